"""Verdicts from k adversarial examples known to share a source (several pieces of evidence from
one buyer): candidates' scores are averaged over the k examples before the verdict, and the key
test reads the k examples together (``Scores.groups``)."""
from __future__ import annotations

import torch
from torch import Tensor

from tracer.tracing import Scores, named

# the numbers of examples from one buyer that calibrate reports detection for
GROUP_SIZES = (5, 10)


def group_scores(scores: Scores, source: Tensor, k: int, trials: int = 1000,
                 seed: int = 0) -> tuple[Scores, Tensor] | None:
    """``trials`` groups of k examples drawn (without replacement) from one source, spread
    evenly over the sources that have at least k examples: each group's scores (one row,
    ``Scores.groups``) and its source, [trials, m] and [trials]. None when no source has k
    examples. Innocent sets: one source for all.

    Shape: source [n].
    """
    gen = torch.Generator().manual_seed(seed)
    groups = [(s, (source == s).nonzero().flatten()) for s in source.unique().tolist()]
    groups = [(s, idx) for s, idx in groups if len(idx) >= k]
    if not groups:
        return None
    picks, sources = [], []
    for t in range(trials):
        s, idx = groups[t % len(groups)]
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
        sources.append(s)
    return scores.groups(torch.stack(picks)), torch.tensor(sources)


def aggregate_accuracy(scores: Scores, source: Tensor, k: int, trials: int = 1000,
                       seed: int = 0) -> float | None:
    """Tracing accuracy of k examples from one source scored together (the top-1 reading, no
    threshold), over the groups of :func:`group_scores`; None when no source has k."""
    got = group_scores(scores, source, k, trials, seed)
    return None if got is None else float((named(got[0]) == got[1]).float().mean())


def group_rates(scores: Scores, source: Tensor,
                thresholds: dict[int, float | None]) -> dict[str, dict[str, float] | None]:
    """Per group size k (``thresholds``' keys, each with its threshold, as in
    :func:`tracer.tracing.verdict`): how often k examples from one buyer, tested together,
    name their source (``detection_rate``) and another copy (``wrong_accusation_rate``); None
    where no source has k examples."""
    out: dict[str, dict[str, float] | None] = {}
    for k, threshold in thresholds.items():
        got = group_scores(scores, source, k)
        if got is None:
            out[str(k)] = None
            continue
        verdicts = named(got[0], threshold)
        out[str(k)] = {
            "detection_rate": float((verdicts == got[1]).float().mean()),
            "wrong_accusation_rate": float(((verdicts >= 0) & (verdicts != got[1])).float().mean())}
    return out


def innocent_groups(scores: Scores, k: int, seed: int = 0) -> Scores | None:
    """Groups of k innocent inputs scored together (:func:`group_scores`, one source for all);
    None where the set has fewer than k."""
    got = group_scores(scores, torch.zeros(len(scores), dtype=torch.long), k, seed=seed)
    return None if got is None else got[0]


def group_false_accusations(scores: Scores,
                            thresholds: dict[int, float | None]) -> dict[str, float | None]:
    """Per group size k: how often k innocent inputs, tested together at k's threshold, name
    any copy; None where the set has fewer than k."""
    out: dict[str, float | None] = {}
    for k, threshold in thresholds.items():
        groups = innocent_groups(scores, k)
        out[str(k)] = None if groups is None else float((named(groups, threshold) >= 0)
                                                        .float().mean())
    return out
