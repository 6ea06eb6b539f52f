"""HopSkipJump, batched: many images at once, all random directions of an estimate in one query.

Chen, Jordan and Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
IEEE S&P 2020 (L2 version, untargeted). Each iteration per image: a binary search onto the
boundary between the clean image and the current adversarial one, a Monte-Carlo estimate of the
boundary's normal from ``init_eval * sqrt(t)`` random directions (capped at ``max_eval``), and a
geometric step-size search along it. The order of these steps and every constant follow ART's
implementation, so both spend the same queries on the same image; only the batching differs.
``project_final=True`` ends with one more binary search (the HSJA paper's own order), which leaves
the result on the boundary instead of one step past it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from tracer.attacks.oracle import HardLabelOracle


class BatchedHopSkipJump:
    """``perturb(x, y) -> x_adv`` for a batch, querying only ``predict`` (a hard-label oracle)."""

    def __init__(self, predict: HardLabelOracle, max_iter: int = 20, max_eval: int = 1000,
                 init_eval: int = 100, init_size: int = 100, gamma: float = 1.0,
                 project_final: bool = False, query_batch: int = 8192, seed: int = 0):
        self.oracle = predict
        self.max_iter, self.max_eval, self.init_eval = max_iter, max_eval, init_eval
        self.init_size, self.gamma, self.project_final = init_size, gamma, project_final
        self.query_batch, self.seed = query_batch, seed
        self.last_queries = torch.zeros(0, dtype=torch.long)

    # ---------------------------------------------------------------- oracle access
    def _is_adv(self, xs: Tensor, owner: Tensor) -> Tensor:
        """Whether each row of ``xs`` fools the copy; ``owner`` [r] names each row's image.

        A row that would take its image past the oracle's per-image budget is not sent and
        counts as not adversarial, so an image out of budget keeps its last adversarial point.
        """
        out = torch.zeros(len(xs), dtype=torch.bool, device=xs.device)
        owner_cpu = owner.cpu()
        send = torch.ones(len(xs), dtype=torch.bool)
        if self.oracle.budget is not None:
            send = self._queries[owner_cpu] + _rank_within_owner(owner_cpu) < self.oracle.budget
        rows = send.nonzero().flatten().to(xs.device)
        for s in range(0, len(rows), self.query_batch):
            r = rows[s:s + self.query_batch]
            out[r] = self.oracle(xs[r]) != self._y[owner[r]]
        self._queries.index_add_(0, owner_cpu[send], torch.ones(int(send.sum()), dtype=torch.long))
        return out

    # ---------------------------------------------------------------- the attack
    @torch.no_grad()
    def perturb(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Shape: x [n, C, H, W] in [0, 1]; y [n] labels to move away from -> x_adv like x.
        An image with no adversarial starting point comes back unchanged (a failure)."""
        n = len(x)
        self.oracle.reset(n)
        self._queries = torch.zeros(n, dtype=torch.long)
        self._y = self.oracle(x) if y is None else y.to(x.device)
        if y is None:
            self._queries += 1
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        d = x[0].numel()
        theta = self.gamma / (d * math.sqrt(d))
        cur, found = self._initial(x, gen)
        idx = found.nonzero().flatten()
        for t in range(self.max_iter):
            if len(idx) == 0:
                break
            xs, cs = x[idx], cur[idx]
            dist = (cs - xs).flatten(1).norm(dim=1)
            delta = torch.full_like(dist, 0.1) if t == 0 else math.sqrt(d) * theta * dist
            cs = self._binary_search(xs, cs, idx, torch.full_like(dist, theta))
            num_eval = min(int(self.init_eval * math.sqrt(t + 1)), self.max_eval)
            update = self._gradient_direction(cs, idx, delta, num_eval, gen)
            dist = (cs - xs).flatten(1).norm(dim=1)
            cur[idx] = self._step(cs, update, idx, 2.0 * dist / math.sqrt(t + 1))
        if self.project_final and len(idx):
            cur[idx] = self._binary_search(x[idx], cur[idx], idx,
                                           torch.full((len(idx),), theta, device=x.device))
        self.last_queries = self._queries.clone()
        return cur.clamp(0.0, 1.0)

    def _initial(self, x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Uniform noise until it fools the copy (``init_size`` draws), then a binary search."""
        cur, found = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.init_size):
            todo = (~found).nonzero().flatten()
            if len(todo) == 0:
                break
            noise = torch.rand(x[todo].shape, generator=gen, device=x.device)
            ok = self._is_adv(noise, todo)
            cur[todo[ok]], found[todo[ok]] = noise[ok], True
        idx = found.nonzero().flatten()
        if len(idx):
            cur[idx] = self._binary_search(x[idx], cur[idx], idx,
                                           torch.full((len(idx),), 1e-3, device=x.device))
        return cur, found

    def _binary_search(self, x: Tensor, adv: Tensor, idx: Tensor, threshold: Tensor) -> Tensor:
        """Per image, the point of the segment clean -> adv nearest the clean image that still
        fools the copy, to within ``threshold`` of the segment's length."""
        lo = torch.zeros(len(x), device=x.device)
        hi = torch.ones(len(x), device=x.device)
        while True:
            active = (hi - lo) > threshold
            if not active.any():
                break
            a = active.nonzero().flatten()
            mid = (hi[a] + lo[a]) / 2
            blend = _blend(x[a], adv[a], mid)
            ok = self._is_adv(blend, idx[a])
            hi[a] = torch.where(ok, mid, hi[a])
            lo[a] = torch.where(ok, lo[a], mid)
        return _blend(x, adv, hi)

    def _gradient_direction(self, cur: Tensor, idx: Tensor, delta: Tensor, num_eval: int,
                            gen: torch.Generator) -> Tensor:
        """Monte-Carlo estimate of the boundary's normal at ``cur`` (HSJA Eq. 14, baseline
        subtracted), unit L2 norm per image."""
        b = len(cur)
        u = torch.randn((b, num_eval, *cur.shape[1:]), generator=gen, device=cur.device)
        u = u / u.flatten(2).norm(dim=2).view(b, num_eval, *([1] * (cur.ndim - 1)))
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

    def _step(self, cur: Tensor, update: Tensor, idx: Tensor, eps: Tensor,
              max_halvings: int = 40) -> Tensor:
        """Geometric step-size search: halve eps until cur + eps * update fools the copy."""
        out = cur.clone()
        todo = torch.arange(len(cur), device=cur.device)
        shape = (-1, *([1] * (cur.ndim - 1)))
        for _ in range(max_halvings):
            eps[todo] = eps[todo] / 2
            cand = cur[todo] + eps[todo].view(shape) * update[todo]
            ok = self._is_adv(cand, idx[todo])
            out[todo[ok]] = cand[ok].clamp(0.0, 1.0)
            todo = todo[~ok]
            if len(todo) == 0:
                break
        return out

    def __repr__(self) -> str:
        return (f"BatchedHopSkipJump(L2, untargeted, max_iter={self.max_iter}, "
                f"max_eval={self.max_eval}, init_eval={self.init_eval}, "
                f"project_final={self.project_final}, budget={self.oracle.budget})")


def _blend(x: Tensor, adv: Tensor, w: Tensor) -> Tensor:
    """(1 - w) * x + w * adv per image; w [n]."""
    w = w.view(-1, *([1] * (x.ndim - 1)))
    return (1 - w) * x + w * adv


def _rank_within_owner(owner: Tensor) -> Tensor:
    """For each row, how many earlier rows have the same owner."""
    order = torch.argsort(owner, stable=True)
    sorted_owner = owner[order]
    first = torch.searchsorted(sorted_owner, sorted_owner)
    rank = torch.empty_like(owner)
    rank[order] = torch.arange(len(owner)) - first
    return rank
