"""Square, batched: many images at once, one query per image and iteration.

Andriushchenko, Croce, Flammarion and Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020 (Linf version, untargeted). Each image starts
from vertical stripes of +-eps, then per iteration draws a square window at a random place, sets
the perturbation on it to +-eps (one sign per channel) and keeps the change where it raises the
margin ``max_{j != y} s_j - s_y`` of the copy's scores (attacks.margin), until the margin is
positive (adversarial). The window's side shrinks on the authors' schedule (``p_init`` of the
pixels at first, halved at fixed shares of ``max_iter``).

ART's implementation hands us one image at a time (its window is shared by the batch) and spends
three queries per iteration where one suffices: the margin of the current point is known from
the query that accepted it. Here every image draws its own window, as in the authors' code, and
an iteration costs one query per image that is not yet adversarial.
"""
from __future__ import annotations

import bisect
import math

import torch
from torch import Tensor

from tracer.attacks.oracle import ScoreOracle
from tracer.attacks.score_based import ScoreSearch
from tracer.models.common_directions import square_windows
from tracer.seeding import derived_seed

# Shares of 10,000 iterations after which the window's area halves (the authors' schedule,
# rescaled to max_iter).
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def window_share(p_init: float, iteration: int, max_iter: int) -> float:
    """The share of the image's pixels that iteration ``iteration``'s window covers."""
    at = int(iteration / max_iter * 10000)
    return p_init / 2 ** bisect.bisect_left(_HALVINGS, at)


class BatchedSquare(ScoreSearch):
    """``perturb(x, y) -> x_adv`` within an Linf ball of radius ``eps``, querying only
    ``predict``'s scores. ``last_queries`` holds each image's queries; an image stops at the
    oracle's per-image budget (keeping its best point) and never exceeds it."""

    def __init__(self, predict: ScoreOracle, eps: float = 0.1, max_iter: int = 2000,
                 p_init: float = 0.8, seed: int = 0):
        super().__init__(predict)
        if eps <= 0 or not 0 < p_init <= 1 or max_iter < 1:
            raise ValueError(f"Square needs eps > 0, 0 < p_init <= 1 and max_iter >= 1, got "
                             f"eps={eps}, p_init={p_init}, max_iter={max_iter}")
        self.eps, self.max_iter, self.p_init, self.seed = eps, max_iter, p_init, seed

    @torch.no_grad()
    def perturb(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Shape: x [n, C, H, W] in [0, 1]; y [n] true labels -> x_adv like x,
        ||x_adv - x||_inf <= eps."""
        n, c, h, w = x.shape
        y = self._begin(x, y)
        rows = torch.arange(n, device=x.device)
        # The chunk's torch seed (attacks.generate seeds one per chunk) so that chunks differ.
        gen = torch.Generator(device=x.device).manual_seed(
            derived_seed(self.seed, f"square_{int(torch.randint(2**31, (1,)))}"))
        budget = self.oracle.budget

        def affordable(a: Tensor) -> Tensor:
            return a if budget is None else a[(self._queries[a.cpu()] < budget).to(x.device)]

        stripes = self.eps * self._signs((n, c, 1, w), gen, x.device)
        best = (x + stripes).clamp(0, 1)
        margin = self._margin(best, y, rows)
        for it in range(self.max_iter):
            a = affordable(rows[margin <= 0])
            if len(a) == 0:
                break
            side = min(max(round(math.sqrt(window_share(self.p_init, it, self.max_iter) * h * w)),
                           1), h - 1, w - 1)
            window = square_windows(len(a), h, w, side, gen, x.device)
            signs = self.eps * self._signs((len(a), c, 1, 1), gen, x.device)
            cand = self._candidates(x[a], best[a], window, signs)
            new = self._margin(cand, y[a], a)
            better = new > margin[a]
            best[a[better]], margin[a[better]] = cand[better], new[better]
        self.last_queries = self._queries.clone()
        return best

    @staticmethod
    def _signs(shape: tuple, gen: torch.Generator, device) -> Tensor:
        return torch.randint(0, 2, shape, generator=gen, device=device).float() * 2 - 1

    def _candidates(self, x: Tensor, best: Tensor, window: Tensor, signs: Tensor) -> Tensor:
        """``best`` with its perturbation set to ``signs`` on ``window``; where that changes no
        pixel (the window already holds those signs), the opposite signs, which always do."""
        cand = torch.where(window, (x + signs).clamp(0, 1), best)
        same = (cand == best).flatten(1).all(dim=1)
        if same.any():
            cand[same] = torch.where(window[same], (x[same] - signs[same]).clamp(0, 1),
                                     best[same])
        return cand

    def __repr__(self) -> str:
        return (f"Square(Linf, untargeted, batched, eps={self.eps}, p_init={self.p_init}, "
                f"max_iter={self.max_iter}, budget={self.oracle.budget})")
