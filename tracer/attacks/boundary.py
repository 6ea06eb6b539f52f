"""The Boundary attack, batched: many images at once, each trial's candidates of every image in one
query.

Brendel, Rauber and Bethge, "Decision-Based Adversarial Attacks: Reliable Attacks Against
Black-Box Machine Learning Models", ICLR 2018 (untargeted). Each iteration per image: up to
``num_trial`` trials of ``sample_size`` orthogonal steps (a random step of relative size ``delta``
on the sphere around the clean image), until one of them still fools the copy; then up to
``num_trial`` trials of a step of relative size ``epsilon`` from those towards the clean image,
keeping the nearest that still fools it. Both step sizes adapt per image to the share of
candidates that succeed (below 0.2: shrink by ``step_adapt``, above 0.5: grow). The steps,
constants and adaptation follow ART's ``BoundaryAttack``; two things differ: the starting point
is the uniform draw that fools the copy, moved by a binary search to the boundary (as the base
class does for every attack of ours, where ART starts from the draw itself), and an image whose
budget runs out keeps its last adversarial point (ART's adapter returns it unchanged).
"""
from __future__ import annotations

import torch
from torch import Tensor

from tracer.attacks.hard_label import HardLabelSearch
from tracer.attacks.oracle import HardLabelOracle


class BatchedBoundary(HardLabelSearch):
    """``perturb(x, y) -> x_adv`` for a batch, querying only ``predict`` (a hard-label oracle).

    ``epsilon_stop``: an image is done once its adversarial point is within this L2 distance of
    the clean image (the attacker's perturbation budget); None runs every iteration, as ART does.
    """

    def __init__(self, predict: HardLabelOracle, max_iter: int = 500, num_trial: int = 25,
                 sample_size: int = 20, init_size: int = 100, delta: float = 0.01,
                 epsilon: float = 0.01, step_adapt: float = 0.667, min_epsilon: float = 0.0,
                 epsilon_stop: float | None = None, query_batch: int = 1024, seed: int = 0):
        super().__init__(predict, init_size, query_batch, seed)
        if not 0 < step_adapt < 1:
            raise ValueError(f"step_adapt must lie in (0, 1), not {step_adapt}")
        self.max_iter, self.num_trial, self.sample_size = max_iter, num_trial, sample_size
        self.delta, self.epsilon, self.step_adapt = delta, epsilon, step_adapt
        self.min_epsilon, self.epsilon_stop = min_epsilon, epsilon_stop

    def _run(self, x: Tensor, gen: torch.Generator) -> Tensor:
        cur, found = self._initial(x, gen)
        n = len(x)
        delta = torch.full((n,), float(self.delta), device=x.device)
        eps = torch.full((n,), float(self.epsilon), device=x.device)
        idx = self._live(x, cur, found.nonzero().flatten())
        for _ in range(self.max_iter):
            if len(idx) == 0:
                break
            cands, ok = self._orthogonal_trials(x, cur, delta, idx, gen)
            moved = ok.any(dim=1)
            idx, cands, ok = idx[moved], cands[moved], ok[moved]
            cur[idx], stuck = self._source_trials(x[idx], cands, ok, eps, idx)
            idx = idx[~stuck & (eps[idx] >= self.min_epsilon)]
            idx = self._live(x, cur, idx)
        return cur

    def _live(self, x: Tensor, cur: Tensor, idx: Tensor) -> Tensor:
        """The images of ``idx`` with budget left and, under ``epsilon_stop``, still farther."""
        if self.oracle.budget is not None:
            idx = idx[(self._queries[idx.cpu()] < self.oracle.budget).to(idx.device)]
        if self.epsilon_stop is not None:
            idx = idx[(cur[idx] - x[idx]).flatten(1).norm(dim=1) > self.epsilon_stop]
        return idx

    def _adapt(self, step: Tensor, rows: Tensor, ratio: Tensor) -> None:
        """ART's trust region: shrink a step that succeeds under 20%, grow one over 50%."""
        step[rows] = torch.where(ratio < 0.2, step[rows] * self.step_adapt,
                                 torch.where(ratio > 0.5, step[rows] / self.step_adapt,
                                             step[rows]))

    def _orthogonal_trials(self, x: Tensor, cur: Tensor, delta: Tensor, idx: Tensor,
                           gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Per image of ``idx``, the first trial's ``sample_size`` orthogonal candidates of which
        any fools the copy: candidates [b, s, ...] and which fool it [b, s] (all False for an
        image with none in ``num_trial`` trials)."""
        b, s = len(idx), self.sample_size
        cands = cur[idx].unsqueeze(1).repeat(1, s, *([1] * (x.ndim - 1)))
        ok = torch.zeros(b, s, dtype=torch.bool, device=x.device)
        todo = torch.arange(b, device=x.device)
        for _ in range(self.num_trial):
            rows = idx[todo]
            trial = self._orthogonal_step(x[rows], cur[rows], delta[rows], gen)
            fooled = self._is_adv(trial.flatten(0, 1), rows.repeat_interleave(s)).view(-1, s)
            self._adapt(delta, rows, fooled.float().mean(dim=1))
            done = fooled.any(dim=1)
            cands[todo[done]], ok[todo[done]] = trial[done], fooled[done]
            todo = todo[~done]
            if len(todo) == 0:
                break
        return cands, ok

    def _orthogonal_step(self, x: Tensor, cur: Tensor, delta: Tensor,
                         gen: torch.Generator) -> Tensor:
        """``sample_size`` candidates per image [b, s, ...]: a random step of L2 length
        ``delta * |x - cur|`` orthogonal to x - cur, then back onto the sphere of radius
        |x - cur| around x (ART's ``_orthogonal_perturb``), clipped to [0, 1]."""
        b, s, shape = len(x), self.sample_size, x.shape[1:]
        diff = (x - cur).flatten(1)                                   # [b, d]
        dist = diff.norm(dim=1).clamp_min(1e-12)
        unit = diff / dist.unsqueeze(1)
        p = torch.randn((b, s, diff.shape[1]), generator=gen, device=x.device)
        p = p / p.norm(dim=2, keepdim=True) * (delta * dist).view(b, 1, 1)
        p = p - (p @ unit.unsqueeze(2)) * unit.unsqueeze(1)
        hyp = torch.sqrt(1 + delta ** 2).view(b, 1, 1)
        step = ((1 - hyp) * (-diff).unsqueeze(1) + p) / hyp
        return (cur.flatten(1).unsqueeze(1) + step).clamp(0.0, 1.0).view(b, s, *shape)

    def _source_trials(self, x: Tensor, cands: Tensor, ok: Tensor, eps: Tensor,
                       idx: Tensor) -> tuple[Tensor, Tensor]:
        """Steps of relative size eps towards the clean image from each image's fooling
        candidates, until any still fools the copy: the nearest of those per image [b, ...], and
        which images found none in ``num_trial`` trials (these end at their nearest candidate)."""
        b, s = ok.shape
        shape = x.shape[1:]
        out = _nearest(x, cands, ok)
        todo = torch.arange(b, device=x.device)
        for _ in range(self.num_trial):
            rows, valid = idx[todo], ok[todo]
            step = cands[todo] + eps[rows].view(-1, 1, *([1] * len(shape))) * (
                x[todo].unsqueeze(1) - cands[todo])
            step = step.clamp(0.0, 1.0)
            fooled = torch.zeros_like(valid)
            fooled[valid] = self._is_adv(step[valid], rows.unsqueeze(1).expand(-1, s)[valid])
            self._adapt(eps, rows, fooled.float().sum(dim=1) / valid.float().sum(dim=1))
            done = fooled.any(dim=1)
            out[todo[done]] = _nearest(x[todo[done]], step[done], fooled[done])
            todo = todo[~done]
            if len(todo) == 0:
                break
        stuck = torch.zeros(b, dtype=torch.bool, device=x.device)
        stuck[todo] = True
        return out, stuck

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(untargeted, max_iter={self.max_iter}, "
                f"num_trial={self.num_trial}, sample_size={self.sample_size}, "
                f"delta={self.delta}, epsilon={self.epsilon}, epsilon_stop={self.epsilon_stop}, "
                f"budget={self.oracle.budget})")


def _nearest(x: Tensor, cands: Tensor, ok: Tensor) -> Tensor:
    """Per image, the candidate marked ``ok`` nearest (L2) to the clean image: [b, ...]."""
    dist = (cands - x.unsqueeze(1)).flatten(2).norm(dim=2).masked_fill(~ok, float("inf"))
    return cands[torch.arange(len(x), device=x.device), dist.argmin(dim=1)]
