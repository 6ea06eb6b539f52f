"""What every batched decision-based attack of ours shares: label queries counted per image
within the budget, a first adversarial point, and binary searches towards the clean image."""
from __future__ import annotations

import torch
from torch import Tensor

from tracer.attacks.oracle import HardLabelOracle
from tracer.seeding import derived_seed

# An answer within float error of the boundary fools the copy in one batch layout and not in
# another (another batch size, another device): each image's answer ends this share further out
# along its own perturbation, where one query confirms that it still fools the copy there.
SETTLE = 1e-3


class HardLabelSearch:
    """Base of the batched hard-label attacks; subclasses write ``_run(x, gen) -> x_adv``.

    ``perturb`` counts each image's queries in ``last_queries``. A query that would take an image
    past the oracle's per-image budget is not sent and answers "not adversarial", so an image out
    of budget keeps its last adversarial point and the attack never exceeds the budget.
    """

    def __init__(self, predict: HardLabelOracle, init_size: int = 100, query_batch: int = 8192,
                 seed: int = 0):
        if not isinstance(predict, HardLabelOracle):
            raise TypeError(f"{type(self).__name__} takes a HardLabelOracle, "
                            f"not a {type(predict).__name__}")
        self.oracle, self.init_size = predict, init_size
        self.query_batch, self.seed = query_batch, seed
        self.last_queries = torch.zeros(0, dtype=torch.long)

    @torch.no_grad()
    def perturb(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Shape: x [n, C, H, W] in [0, 1]; y [n] labels to move away from -> x_adv like x.
        An image with no adversarial starting point comes back unchanged (a failure)."""
        self.oracle.reset(len(x))
        self._queries = torch.zeros(len(x), dtype=torch.long)
        self._y = self.oracle(x) if y is None else y.to(x.device)
        if y is None:
            self._queries += 1
        gen = torch.Generator(device=x.device).manual_seed(derived_seed(self.seed, "hard_label"))
        out = self._settled(x, self._run(x, gen).clamp(0.0, 1.0))
        self.last_queries = self._queries.clone()
        return out

    def _settled(self, x: Tensor, adv: Tensor) -> Tensor:
        """``adv`` moved ``SETTLE`` further from ``x`` where that still fools the copy."""
        moved = (adv != x).flatten(1).any(dim=1).nonzero().flatten()
        if len(moved) == 0:
            return adv
        further = blend(x[moved], adv[moved],
                        torch.full((len(moved),), 1 + SETTLE, device=x.device)).clamp(0.0, 1.0)
        ok = self._is_adv(further, moved)
        adv[moved[ok]] = further[ok]
        return adv

    def _run(self, x: Tensor, gen: torch.Generator) -> Tensor:
        raise NotImplementedError

    def _is_adv(self, xs: Tensor, owner: Tensor) -> Tensor:
        """Whether each row of ``xs`` fools the copy; ``owner`` [r] names each row's image."""
        out = torch.zeros(len(xs), dtype=torch.bool, device=xs.device)
        owner_cpu = owner.cpu()
        send = torch.ones(len(xs), dtype=torch.bool)
        budget = self.oracle.budget
        # Ranking rows per owner costs a sort: only needed when some image could reach its budget.
        if budget is not None and int(self._queries.max()) + len(xs) > budget:
            send = self._queries[owner_cpu] + _rank_within_owner(owner_cpu) < budget
        rows = send.nonzero().flatten().to(xs.device)
        for s in range(0, len(rows), self.query_batch):
            r = rows[s:s + self.query_batch]
            out[r] = self.oracle(xs[r]) != self._y[owner[r]]
        self._queries.index_add_(0, owner_cpu[send], torch.ones(int(send.sum()), dtype=torch.long))
        return out

    def _initial(self, x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Uniform noise until it fools the copy (``init_size`` draws), then a binary search.
        Returns the starting points and which images have one."""
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
            ok = self._is_adv(blend(x[a], adv[a], mid), idx[a])
            hi[a] = torch.where(ok, mid, hi[a])
            lo[a] = torch.where(ok, lo[a], mid)
        return blend(x, adv, hi)


def blend(x: Tensor, adv: Tensor, w: Tensor) -> Tensor:
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
