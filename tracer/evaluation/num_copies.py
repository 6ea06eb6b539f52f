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

from tracer.tracing import Scores, outranks


def accuracy_vs_num_copies(scores: Scores, source: Tensor, sizes: list[int]) -> dict[int, float]:
    """For each n in ``sizes`` (2 <= n <= m): the mean over examples and over every set of n - 1
    innocents of [the source outranks all of them]; a tie counts as a miss.

    Shape: source [n_ev].
    """
    n_ev, m = scores.value.shape
    beaten_by = scores.at_or_above(source)   # innocents at or above the source
    out = {}
    for n in sizes:
        if not 2 <= n <= m:
            raise ValueError(f"number of copies {n} outside 2..{m}")
        total = comb(m - 1, n - 1)
        out[n] = sum(comb(m - 1 - int(r), n - 1) for r in beaten_by) / (total * n_ev)
    return out


def monte_carlo_accuracy(source: tuple[Tensor, Tensor], innocent: tuple[Tensor, Tensor],
                         sizes: list[int], trials: int = 20000, seed: int = 0) -> dict[int, float]:
    """The paper's estimate: draw one source score and n - 1 innocent scores independently from
    their empirical distributions; the fraction of draws where the source outranks them all
    (ties miss). ``source``, ``innocent``: (eligible, value) of every such score, 1-d each."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for n in sizes:
        i = torch.randint(len(source[0]), (trials, 1), generator=gen)
        j = torch.randint(len(innocent[0]), (trials, n - 1), generator=gen)
        wins = outranks(source[0][i], source[1][i], innocent[0][j], innocent[1][j])
        out[n] = float(wins.all(dim=1).float().mean())
    return out
