"""A confidence for every verdict, from the score distributions of sources and innocents.

The seller can attack its own copies, so it knows how a source's score and an innocent copy's
score are distributed. With exactly one source among m candidates and a uniform prior, the
posterior that candidate i is the source is ``softmax_i(log f_src(s_i) - log f_inn(s_i))``
(the innocents' density of the other candidates cancels). Densities are smoothed histograms over
the score's value, apart for eligible and ineligible candidates (tracer.tracing.Scores).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tracer.tracing import Scores


@dataclass
class ScoreDensities:
    """Histogram densities of source and innocent scores over shared value bin ``edges``; bins
    ``[0, b)`` hold ineligible candidates, ``[b, 2b)`` eligible ones (b = len(edges) - 1)."""
    edges: Tensor
    source_density: Tensor
    innocent_density: Tensor

    def bins(self, scores: Scores) -> Tensor:
        b = len(self.edges) - 1
        idx = torch.bucketize(scores.value.contiguous(), self.edges[1:-1])
        return idx + b * scores.eligibility().long()

    def log_ratio(self, scores: Scores) -> Tensor:
        """log f_src(s) - log f_inn(s), elementwise: [n, m]."""
        idx = self.bins(scores)
        return self.source_density[idx].log() - self.innocent_density[idx].log()

    def posterior(self, scores: Scores) -> Tensor:
        """P(candidate i is the source | scores). Shape: -> [n, m], rows sum to 1."""
        return torch.softmax(self.log_ratio(scores), dim=1)


def fit_densities(scores: Scores, source: Tensor, bins: int = 30,
                  pseudo_count: float = 0.5) -> ScoreDensities:
    """Fit from the scores of evidence whose ``source`` [n] is known."""
    is_src = torch.zeros_like(scores.value, dtype=torch.bool)
    is_src[torch.arange(len(scores)), source] = True
    lo, hi = float(scores.value.min()), float(scores.value.max())
    edges = torch.linspace(lo, hi + 1e-6, bins + 1)
    fitted = ScoreDensities(edges, torch.empty(0), torch.empty(0))
    idx = fitted.bins(scores)

    def density(where: Tensor) -> Tensor:
        counts = torch.bincount(idx[where], minlength=2 * bins).float() + pseudo_count
        return counts / counts.sum()

    fitted.source_density, fitted.innocent_density = density(is_src), density(~is_src)
    return fitted


def cross_fitted_confidence(scores: Scores, source: Tensor, folds: int = 2,
                            seed: int = 0) -> Tensor:
    """Each example's verdict confidence from densities fitted on the other folds, so no example
    calibrates its own confidence. Shape: -> [n]."""
    n = len(scores)
    fold = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) % folds
    conf = torch.empty(n)
    for f in range(folds):
        test, train = fold == f, fold != f
        if not train.any() or not test.any():
            conf[test] = 1.0 / scores.num_candidates
            continue
        fitted = fit_densities(scores.select(train), source[train])
        conf[test] = fitted.posterior(scores.select(test)).max(dim=1).values
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
