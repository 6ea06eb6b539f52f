"""Verdicts from k adversarial examples known to share a source (several pieces of evidence from
one buyer): candidates' scores are averaged over the k examples before the verdict
(``Scores.mean``)."""
from __future__ import annotations

import torch
from torch import Tensor

from tracer.tracing import Scores, named


def aggregate_accuracy(scores: Scores, source: Tensor, k: int, trials: int = 1000,
                       seed: int = 0) -> float | None:
    """Tracing accuracy of the mean score over k examples drawn (without replacement) from one
    source, estimated over ``trials`` random draws spread evenly over the sources that have at
    least k examples. None when no source has k examples.

    Shape: source [n].
    """
    gen = torch.Generator().manual_seed(seed)
    groups = [(s, (source == s).nonzero().flatten()) for s in source.unique().tolist()]
    groups = [(s, idx) for s, idx in groups if len(idx) >= k]
    if not groups:
        return None
    correct = 0
    total = 0
    for t in range(trials):
        s, idx = groups[t % len(groups)]
        pick = idx[torch.randperm(len(idx), generator=gen)[:k]]
        correct += int(named(scores.select(pick).mean()).item() == s)
        total += 1
    return correct / total
