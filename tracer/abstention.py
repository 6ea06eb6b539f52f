"""Decide or abstain: the score below which tracer names nobody, chosen on innocent sets.

A verdict names the top-scoring candidate only when its score reaches the threshold (and no
other candidate ties it); otherwise it says "no match". The threshold is the smallest one at which
every innocent set's false-accusation rate stays within a target, measured on a calibration half
of each set; the other half reports the rate honestly.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from tracer.tracing import named


def _rate(mask: Tensor) -> float | None:
    return float(mask.float().mean()) if mask.numel() else None


def false_accusation_rate(scores: Tensor, threshold: float | None) -> float | None:
    """Share of innocent inputs (no candidate is the source) on which a copy is named.
    Shape: scores [n, m]."""
    return _rate(named(scores, threshold) >= 0)


def detection_rate(scores: Tensor, source: Tensor, threshold: float | None) -> float | None:
    """Share of evidence on which the right copy is named. Shape: scores [n, m]; source [n]."""
    return _rate(named(scores, threshold) == source)


def wrong_accusation_rate(scores: Tensor, source: Tensor,
                          threshold: float | None) -> float | None:
    """Share of evidence on which a copy other than the source is named."""
    v = named(scores, threshold)
    return _rate((v >= 0) & (v != source))


def choose_threshold(innocent: dict[str, Tensor], max_false_accusation: float) -> float | None:
    """The smallest threshold at which tracer names a copy on at most a ``max_false_accusation``
    share of every innocent set (scores [n, m] per set); None when no threshold is needed."""
    if not 0 <= max_false_accusation < 1:
        raise ValueError(f"max_false_accusation must be in [0, 1), got {max_false_accusation}")
    threshold = -math.inf
    for name, scores in innocent.items():
        if len(scores) == 0:
            raise ValueError(f"innocent set {name!r} is empty")
        accused = named(scores) >= 0          # ties abstain at any threshold
        tops = scores.max(dim=1).values[accused].sort(descending=True).values
        allowed = int(max_false_accusation * len(scores))
        if len(tops) > allowed:
            # just above the (allowed + 1)-th highest accusing score, in the scores' precision
            above = torch.nextafter(tops[allowed], torch.tensor(math.inf, dtype=tops.dtype))
            threshold = max(threshold, float(above))
    return threshold if math.isfinite(threshold) else None


def halves(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded split of n items into a calibration half and a held-out half (index tensors)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2].sort().values, order[n // 2:].sort().values


def operating_curve(innocent: dict[str, Tensor], evidence: dict[str, tuple[Tensor, Tensor]],
                    thresholds: list[float]) -> list[dict]:
    """False-accusation rate per innocent set and detection rate per attack at each threshold.
    ``evidence``: attack -> (scores [n, m], source [n])."""
    return [{"threshold": t,
             "false_accusation_rate": {k: false_accusation_rate(s, t) for k, s in innocent.items()},
             "detection_rate": {k: detection_rate(s, src, t) for k, (s, src) in evidence.items()}}
            for t in thresholds]
