"""HopSkipJump, batched: many images at once, all random directions of an estimate in one query.

Chen, Jordan and Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
IEEE S&P 2020 (L2 version, untargeted). Each iteration per image: a binary search onto the
boundary between the clean image and the current adversarial one, a Monte-Carlo estimate of the
boundary's normal from ``init_eval * sqrt(t)`` random directions (capped at ``max_eval``), and a
geometric step-size search along it. The order of these steps and every constant follow ART's
implementation (the binary search's precision ``theta`` = 0.01 / sqrt(d), not the 1 / d^1.5 of the
authors' code), so both spend the same queries on the same image; only the batching differs.
``project_final=True`` ends with one more binary search (the HSJA paper's own order), which leaves
the result on the boundary instead of one step past it. ``epsilon`` retires an image as soon as
an adversarial point of it (the binary search's or the step's) is within that L2 distance of the
clean image (the attacker's perturbation budget: further iterations would only shrink a
perturbation that already suffices); None runs every iteration, as ART does.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from tracer.attacks.hard_label import HardLabelSearch
from tracer.attacks.oracle import HardLabelOracle


class BatchedHopSkipJump(HardLabelSearch):
    """``perturb(x, y) -> x_adv`` for a batch, querying only ``predict`` (a hard-label oracle)."""

    def __init__(self, predict: HardLabelOracle, max_iter: int = 20, max_eval: int = 1000,
                 init_eval: int = 100, init_size: int = 100, theta: float | None = None,
                 project_final: bool = False, epsilon: float | None = None,
                 query_batch: int = 32, seed: int = 0):
        super().__init__(predict, init_size, query_batch, seed)
        self.max_iter, self.max_eval, self.init_eval = max_iter, max_eval, init_eval
        self.theta, self.project_final, self.epsilon = theta, project_final, epsilon

    def _run(self, x: Tensor, gen: torch.Generator) -> Tensor:
        d = x[0].numel()
        theta = 0.01 / math.sqrt(d) if self.theta is None else self.theta
        cur, found = self._initial(x, gen)
        idx = self._unfinished(x, cur, found.nonzero().flatten())
        for t in range(self.max_iter):
            if len(idx) == 0:
                break
            xs = x[idx]
            delta = (torch.full((len(idx),), 0.1, device=x.device) if t == 0
                     else math.sqrt(d) * theta * (cur[idx] - xs).flatten(1).norm(dim=1))
            cur[idx] = self._binary_search(xs, cur[idx], idx, torch.full_like(delta, theta))
            # A boundary point already within epsilon needs no gradient estimate: the bulk of an
            # iteration's queries.
            far = self._far(x, cur, idx)
            idx, xs, delta = idx[far], xs[far], delta[far]
            if len(idx) == 0:
                break
            cs = cur[idx]
            num_eval = min(int(self.init_eval * math.sqrt(t + 1)), self.max_eval)
            update = self._gradient_direction(cs, idx, delta, num_eval, gen)
            dist = (cs - xs).flatten(1).norm(dim=1)
            cur[idx] = self._step(cs, update, idx, 2.0 * dist / math.sqrt(t + 1))
            idx = self._unfinished(x, cur, idx)
        if self.project_final and len(idx):
            cur[idx] = self._binary_search(x[idx], cur[idx], idx,
                                           torch.full((len(idx),), theta, device=x.device))
        return cur

    def _far(self, x: Tensor, cur: Tensor, idx: Tensor) -> Tensor:
        """Which images of ``idx`` are still farther than ``epsilon`` from their clean image."""
        if self.epsilon is None:
            return torch.ones(len(idx), dtype=torch.bool, device=idx.device)
        return (cur[idx] - x[idx]).flatten(1).norm(dim=1) > self.epsilon

    def _unfinished(self, x: Tensor, cur: Tensor, idx: Tensor) -> Tensor:
        """The images of ``idx`` still farther than ``epsilon`` from their clean image."""
        return idx[self._far(x, cur, idx)]

    def _gradient_direction(self, cur: Tensor, idx: Tensor, delta: Tensor, num_eval: int,
                            gen: torch.Generator) -> Tensor:
        """Monte-Carlo estimate of the boundary's normal at ``cur`` (HSJA Eq. 14, baseline
        subtracted), unit L2 norm per image."""
        b = len(cur)
        u = self._directions(b, num_eval, cur.shape[1:], gen, cur.device)
        d = delta.view(b, 1, *([1] * (cur.ndim - 1)))
        samples = (cur.unsqueeze(1) + d * u).clamp(0.0, 1.0)
        u = (samples - cur.unsqueeze(1)) / d
        owner = idx.repeat_interleave(num_eval)
        f = self._is_adv(samples.flatten(0, 1), owner).view(b, num_eval).float() * 2 - 1
        mean = f.mean(dim=1, keepdim=True)
        # All the same sign: the mean direction; otherwise baseline-subtracted (ART, Chen et al.)
        weight = torch.where(mean.abs() == 1, mean.expand_as(f), f - mean)
        grad = (weight.view(b, num_eval, *([1] * (cur.ndim - 1))) * u).mean(dim=1)
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(b, *([1] * (cur.ndim - 1)))

    def _directions(self, b: int, num_eval: int, shape: torch.Size, gen: torch.Generator,
                    device: torch.device) -> Tensor:
        """``num_eval`` random unit directions per image: [b, num_eval, *shape]."""
        u = torch.randn((b, num_eval, *shape), generator=gen, device=device)
        return u / u.flatten(2).norm(dim=2).view(b, num_eval, *([1] * len(shape)))

    def _step(self, cur: Tensor, update: Tensor, idx: Tensor, eps: Tensor,
              max_halvings: int = 40) -> Tensor:
        """Geometric step-size search: halve eps until cur + eps * update fools the copy."""
        out = cur.clone()
        todo = torch.arange(len(cur), device=cur.device)
        shape = (-1, *([1] * (cur.ndim - 1)))
        for _ in range(max_halvings):
            eps[todo] = eps[todo] / 2
            cand = (cur[todo] + eps[todo].view(shape) * update[todo]).clamp(0.0, 1.0)
            ok = self._is_adv(cand, idx[todo])
            out[todo[ok]] = cand[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                break
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(L2, untargeted, max_iter={self.max_iter}, "
                f"max_eval={self.max_eval}, init_eval={self.init_eval}, "
                f"project_final={self.project_final}, epsilon={self.epsilon}, "
                f"budget={self.oracle.budget})")
