"""Tracing accuracy as a function of the number of copies sold, from one run with m copies.

A piece of evidence depends only on its source copy, and a candidate's score only on that
candidate, so the accuracy an n-copy seller would see (n <= m) is the chance that the source
outscores n - 1 innocents drawn from the m - 1 of this run: exact, no re-run needed. The paper
predicts the same curve by Monte Carlo from the source and innocent score distributions alone,
as if the scores were independent; both are reported side by side.
"""
from __future__ import annotations

from math import comb

import torch
from torch import Tensor


def accuracy_vs_num_copies(scores: Tensor, source: Tensor, sizes: list[int]) -> dict[int, float]:
    """For each n in ``sizes`` (2 <= n <= m): the mean over examples and over every set of n - 1
    innocents of [the source's score beats all of them]; a tie counts as a miss.

    Shape: scores [n_ev, m]; source [n_ev].
    """
    n_ev, m = scores.shape
    src = scores[torch.arange(n_ev), source]
    beaten_by = (scores >= src[:, None]).sum(dim=1) - 1   # innocents at or above the source
    out = {}
    for n in sizes:
        if not 2 <= n <= m:
            raise ValueError(f"number of copies {n} outside 2..{m}")
        total = comb(m - 1, n - 1)
        out[n] = sum(comb(m - 1 - int(r), n - 1) for r in beaten_by) / (total * n_ev)
    return out


def monte_carlo_accuracy(source_scores: Tensor, innocent_scores: Tensor, sizes: list[int],
                         trials: int = 20000, seed: int = 0) -> dict[int, float]:
    """The paper's estimate: draw one source score and n - 1 innocent scores independently from
    their empirical distributions; the fraction of draws where the source wins (ties miss)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for n in sizes:
        s = source_scores[torch.randint(len(source_scores), (trials,), generator=gen)]
        i = innocent_scores[torch.randint(len(innocent_scores), (trials, n - 1), generator=gen)]
        out[n] = float((s > i.max(dim=1).values).float().mean())
    return out
