"""A confidence for every verdict, from the score distributions of sources and innocents.

The seller can attack its own copies, so it knows how a source's score and an innocent copy's
score are distributed. With exactly one source among m candidates and a uniform prior, the
posterior that candidate i is the source is ``softmax_i(log f_src(s_i) - log f_inn(s_i))``
(the innocents' density of the other candidates cancels). Densities are smoothed histograms.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Calibration:
    """Histogram densities of source and innocent scores over shared bin ``edges``."""
    edges: Tensor
    source_density: Tensor
    innocent_density: Tensor

    def log_ratio(self, scores: Tensor) -> Tensor:
        """log f_src(s) - log f_inn(s), elementwise."""
        idx = torch.bucketize(scores.contiguous(), self.edges[1:-1])
        return self.source_density[idx].log() - self.innocent_density[idx].log()

    def posterior(self, scores: Tensor) -> Tensor:
        """P(candidate i is the source | scores). Shape: [n, m] -> [n, m], rows sum to 1."""
        return torch.softmax(self.log_ratio(scores), dim=1)

    def to_json(self) -> dict:
        return {k: v.tolist() for k, v in vars(self).items()}


def fit_calibration(scores: Tensor, source: Tensor, bins: int = 30,
                    pseudo_count: float = 0.5) -> Calibration:
    """Fit from scores [n, m] of evidence whose ``source`` [n] is known."""
    is_src = torch.zeros_like(scores, dtype=torch.bool)
    is_src[torch.arange(len(scores)), source] = True
    lo, hi = float(scores.min()), float(scores.max())
    edges = torch.linspace(lo, hi + 1e-6, bins + 1)

    def density(values: Tensor) -> Tensor:
        counts = torch.histc(values, bins=bins, min=lo, max=hi + 1e-6) + pseudo_count
        return counts / counts.sum()

    return Calibration(edges, density(scores[is_src]), density(scores[~is_src]))


def cross_fitted_confidence(scores: Tensor, source: Tensor, folds: int = 2,
                            seed: int = 0) -> Tensor:
    """Each example's verdict confidence from a calibration fitted on the other folds, so no
    example calibrates its own confidence. Shape: [n, m] -> [n]."""
    n = len(scores)
    fold = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) % folds
    conf = torch.empty(n)
    for f in range(folds):
        test, train = fold == f, fold != f
        if not train.any() or not test.any():
            conf[test] = 1.0 / scores.shape[1]
            continue
        cal = fit_calibration(scores[train], source[train])
        conf[test] = cal.posterior(scores[test]).max(dim=1).values
    return conf


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    edges = torch.linspace(0, 1, bins + 1)
    err = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (confidence > lo) & (confidence <= hi)
        if mask.any():
            err += mask.float().mean().item() * abs(correct[mask].float().mean().item()
                                                     - confidence[mask].mean().item())
    return err
