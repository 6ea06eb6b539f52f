"""Score-based Linf attacks of ours: projected sign-gradient ascent on a gradient estimated from
output scores alone. ART and advertorch have neither NES nor Bandits.

- :class:`NES`: Ilyas, Engstrom, Athalye and Lin, "Black-box Adversarial Attacks with Limited
  Queries and Information", ICML 2018 (antithetic Gaussian search, natural evolution strategies).
- :class:`Bandits`: Ilyas, Engstrom and Madry, "Prior Convictions: Black-Box Adversarial Attacks
  with Bandits and Priors", ICLR 2019 (Bandits-TD: a time prior carried between steps and a data
  prior of ``tile``-pixel tiles, updated by exponentiated gradient).

Both maximise the margin ``max_{j != y} s_j - s_y`` of the copy's scores (cross-entropy saturates
on a copy's output, see attacks.margin), stop an image as soon as a query shows it
adversarial, and never spend more than the oracle's per-image budget.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tracer.attacks.margin import margin_per_example
from tracer.attacks.oracle import ScoreOracle
from tracer.seeding import derived_seed


class ScoreSearch:
    """Base of the score-based attacks of ours: each query's margin, charged to its image."""

    def __init__(self, predict: ScoreOracle):
        if not isinstance(predict, ScoreOracle):
            raise TypeError(f"{type(self).__name__} takes a ScoreOracle, "
                            f"not a {type(predict).__name__}")
        self.oracle = predict
        self.last_queries = torch.zeros(0, dtype=torch.long)

    def _begin(self, x: Tensor, y: Tensor | None) -> Tensor:
        """Start counting queries for the images ``x`` [n]; their labels (the copy's answer,
        one query each, where ``y`` is None) on x's device."""
        self.oracle.reset(len(x))
        self._queries = torch.zeros(len(x), dtype=torch.long)
        if y is None:
            y = self.oracle(x).argmax(1)
            self._queries += 1
        return y.to(x.device)

    def _margin(self, xs: Tensor, y: Tensor, owner: Tensor) -> Tensor:
        """Margin of each row (> 0: adversarial); one query per row, charged to ``owner``."""
        scores = self.oracle(xs)
        self._queries.index_add_(0, owner.cpu(), torch.ones(len(xs), dtype=torch.long))
        return margin_per_example(scores, y)


class ScoreSignAttack(ScoreSearch):
    """Base: ``perturb(x, y) -> x_adv`` within an Linf ball of radius ``eps``; subclasses write
    ``_estimate(x_adv, y, active, gen) -> gradient estimate`` and ``queries_per_step``."""

    queries_per_step: int

    def __init__(self, predict: ScoreOracle, eps: float = 0.1, lr: float = 0.01,
                 max_iter: int = 1000, seed: int = 0):
        super().__init__(predict)
        if eps <= 0 or lr <= 0:
            raise ValueError(f"eps and lr must be positive, got eps={eps}, lr={lr}")
        self.eps, self.lr, self.max_iter, self.seed = eps, lr, max_iter, seed

    @torch.no_grad()
    def perturb(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Shape: x [n, C, H, W] in [0, 1]; y [n] true labels -> x_adv like x, ||x_adv - x||_inf
        <= eps."""
        n = len(x)
        y = self._begin(x, y)
        all_rows = torch.arange(n, device=x.device)
        gen = torch.Generator(device=x.device).manual_seed(derived_seed(self.seed, "score_based"))
        self._reset_state(x)
        x_adv, active = x.clone(), torch.ones(n, dtype=torch.bool, device=x.device)
        budget = self.oracle.budget
        for _ in range(self.max_iter):
            a = all_rows[active]
            if budget is not None:   # room for this check, one step and the next check
                a = a[(self._queries[a.cpu()] + self.queries_per_step + 2 <= budget).to(x.device)]
            if len(a) == 0:
                break
            done = self._margin(x_adv[a], y[a], a) > 0
            active[a[done]] = False
            a = a[~done]
            if len(a) == 0:
                break
            g = self._estimate(x_adv[a], y[a], a, gen)
            step = x_adv[a] + self.lr * torch.sign(g)
            x_adv[a] = torch.min(torch.max(step, x[a] - self.eps), x[a] + self.eps).clamp(0, 1)
        self.last_queries = self._queries.clone()
        return x_adv

    def _reset_state(self, x: Tensor) -> None:
        """Per-batch state of the estimator (Bandits' prior)."""

    def _estimate(self, x: Tensor, y: Tensor, rows: Tensor, gen: torch.Generator) -> Tensor:
        raise NotImplementedError


class NES(ScoreSignAttack):
    """NES: the margin's gradient from ``samples`` antithetic Gaussian probes of scale ``sigma``."""

    def __init__(self, predict: ScoreOracle, samples: int = 50, sigma: float = 0.001, **params):
        if samples < 2 or samples % 2:
            raise ValueError(f"NES samples must be an even number >= 2, got {samples}")
        super().__init__(predict, **params)
        self.samples, self.sigma = samples, sigma
        self.queries_per_step = samples

    def _estimate(self, x, y, rows, gen):
        b, half = len(x), self.samples // 2
        u = torch.randn((b, half, *x.shape[1:]), generator=gen, device=x.device)
        u = torch.cat([u, -u], dim=1)
        probes = (x.unsqueeze(1) + self.sigma * u).flatten(0, 1)
        m = self._margin(probes, y.repeat_interleave(self.samples),
                         rows.repeat_interleave(self.samples)).view(b, self.samples)
        return (m.view(b, self.samples, *([1] * (x.ndim - 1))) * u).mean(1) / self.sigma

    def __repr__(self) -> str:
        return (f"NES(Linf, untargeted, eps={self.eps}, lr={self.lr}, samples={self.samples}, "
                f"sigma={self.sigma}, max_iter={self.max_iter}, budget={self.oracle.budget})")


class Bandits(ScoreSignAttack):
    """Bandits-TD: a prior on the gradient, on a grid of ``tile``-pixel tiles, learnt online from
    two probes per step (``exploration`` scale, ``fd_eta`` finite difference, ``online_lr``).

    The paper's ``online_lr`` of 100 suits cross-entropy on ImageNet logits; on the margin of a
    copy's probability-scale scores it saturates the prior at +-1 within a few steps and the
    attack stalls (the linear test case: 5 of 6 images instead of 6 of 6), hence 1.0.
    """

    queries_per_step = 2

    def __init__(self, predict: ScoreOracle, tile: int = 4, exploration: float = 1.0,
                 fd_eta: float = 0.1, online_lr: float = 1.0, **params):
        if tile < 1:
            raise ValueError(f"Bandits tile must be >= 1, got {tile}")
        super().__init__(predict, **params)
        self.tile, self.exploration, self.fd_eta, self.online_lr = \
            tile, exploration, fd_eta, online_lr

    def _reset_state(self, x):
        c, h, w = x.shape[1:]
        self._prior = x.new_zeros((len(x), c, max(1, h // self.tile), max(1, w // self.tile)))
        self._size = (h, w)

    def _up(self, p: Tensor) -> Tensor:
        return F.interpolate(p, size=self._size, mode="nearest")

    def _estimate(self, x, y, rows, gen):
        prior = self._prior[rows]
        noise = torch.randn(prior.shape, generator=gen, device=x.device)
        q = torch.cat([prior + self.exploration * noise, prior - self.exploration * noise])
        q = self._up(q)
        q = q / q.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        probes = torch.cat([x, x]) + self.fd_eta * q
        m = self._margin(probes, torch.cat([y, y]), torch.cat([rows, rows]))
        deriv = (m[:len(x)] - m[len(x):]) / (self.fd_eta * self.exploration)
        self._prior[rows] = _exponentiated_gradient(prior, deriv.view(-1, 1, 1, 1) * noise,
                                                    self.online_lr)
        return self._up(self._prior[rows])

    def __repr__(self) -> str:
        return (f"Bandits-TD(Linf, untargeted, eps={self.eps}, lr={self.lr}, tile={self.tile}, "
                f"fd_eta={self.fd_eta}, online_lr={self.online_lr}, max_iter={self.max_iter}, "
                f"budget={self.oracle.budget})")


def _exponentiated_gradient(prior: Tensor, grad: Tensor, lr: float) -> Tensor:
    """One exponentiated-gradient step for a prior in [-1, 1] (Bandits' Linf prior update):
    p * e^(lr g) / (p * e^(lr g) + (1 - p) * e^(-lr g)) with p = (prior + 1) / 2, written as a
    sigmoid so that large steps saturate instead of overflowing."""
    p = ((prior + 1) / 2).clamp(1e-6, 1 - 1e-6)
    return torch.sigmoid(torch.logit(p) + 2 * lr * grad) * 2 - 1
