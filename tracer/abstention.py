"""Decide or abstain: the score below which tracer names nobody, chosen on innocent sets.

A verdict names the top-ranked candidate only when it is eligible and its score reaches the
threshold (and no other candidate ties it); otherwise it says "no match". The threshold is the smallest one at which
every innocent set's false-accusation rate stays within a target, measured on a calibration half
of each set; the other half reports the rate honestly. With a ``confidence``, "within" means the
one-sided Clopper-Pearson upper bound of the rate, not the rate seen: a threshold set where 1% of
200 images are accused accuses more than 1% of the next 200 about half the time.
"""
from __future__ import annotations

import math

import torch
from scipy.stats import beta
from torch import Tensor

from tracer.tracing import Scores, named


def _rate(mask: Tensor) -> float | None:
    return float(mask.float().mean()) if mask.numel() else None


def false_accusation_rate(scores: Scores, threshold: float | None) -> float | None:
    """Share of innocent inputs (no candidate is the source) on which a copy is named."""
    return _rate(named(scores, threshold) >= 0)


def detection_rate(scores: Scores, source: Tensor, threshold: float | None) -> float | None:
    """Share of evidence on which the right copy is named. Shape: source [n]."""
    return _rate(named(scores, threshold) == source)


def wrong_accusation_rate(scores: Scores, source: Tensor,
                          threshold: float | None) -> float | None:
    """Share of evidence on which a copy other than the source is named."""
    v = named(scores, threshold)
    return _rate((v >= 0) & (v != source))


def rate_upper_bound(accused: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound, at ``confidence``, of a rate seen ``accused`` times
    in ``n`` trials."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not 0 <= accused <= n:
        raise ValueError(f"accused must be in 0..n ({n}), got {accused}")
    return 1.0 if accused == n else float(beta.ppf(confidence, accused + 1, n - accused))


def allowed_accusations(n: int, max_rate: float, confidence: float | None = None) -> int:
    """How many of ``n`` innocent inputs a threshold may accuse: ``max_rate * n`` (rounded down)
    without a ``confidence``; with one, the most whose rate's upper bound (``rate_upper_bound``)
    is still within ``max_rate``, or 0 when n is too small for even none to show it."""
    if confidence is None:
        return int(max_rate * n)
    k = 0
    while k < n and rate_upper_bound(k + 1, n, confidence) <= max_rate:
        k += 1
    return k


def choose_threshold(innocent: dict[str, Scores], max_false_accusation: float,
                     confidence: float | None = None) -> float | None:
    """The smallest threshold at which tracer names a copy on at most a ``max_false_accusation``
    share of every innocent set (with ``confidence``, see ``allowed_accusations``); -inf when no
    score bound is needed (a verdict still abstains on an ineligible, untested or tied top)."""
    if not 0 <= max_false_accusation < 1:
        raise ValueError(f"max_false_accusation must be in [0, 1), got {max_false_accusation}")
    threshold = -math.inf
    for name, scores in innocent.items():
        if len(scores) == 0:
            raise ValueError(f"innocent set {name!r} is empty")
        _, top, eligible, tied = scores.top()
        # ties and ineligible tops abstain at any threshold
        tops = top[eligible & ~tied].sort(descending=True).values
        allowed = allowed_accusations(len(scores), max_false_accusation, confidence)
        if len(tops) > allowed:
            # just above the (allowed + 1)-th highest accusing score, in the scores' precision
            above = torch.nextafter(tops[allowed], torch.tensor(math.inf, dtype=tops.dtype))
            threshold = max(threshold, float(above))
    return threshold


def stored_threshold(stored: float | None) -> float:
    """A threshold as ``innocent/calibration.json`` stores it, for ``tracing.verdict``: null
    there is :func:`choose_threshold`'s -inf (no score bound, yet a verdict abstains on a top
    that is ineligible, fails the key test or ties), where ``None`` to ``verdict`` would mean
    no abstention at all."""
    return -math.inf if stored is None else float(stored)


def halves(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded split of n items into a calibration half and a held-out half (index tensors)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2].sort().values, order[n // 2:].sort().values


def operating_curve(innocent: dict[str, Scores], evidence: dict[str, tuple[Scores, Tensor]],
                    thresholds: list[float]) -> list[dict]:
    """False-accusation rate per innocent set and detection rate per attack at each threshold.
    ``evidence``: attack -> (scores, source [n])."""
    return [{"threshold": t,
             "false_accusation_rate": {k: false_accusation_rate(s, t) for k, s in innocent.items()},
             "detection_rate": {k: detection_rate(s, src, t) for k, (s, src) in evidence.items()}}
            for t in thresholds]


def split_stability(innocent: dict[str, Scores], evidence: dict[str, tuple[Scores, Tensor]],
                    max_false_accusation: float, confidence: float | None = None,
                    splits: int = 200, seed: int = 0) -> dict:
    """How the calibrate stage's operating point depends on its calibration/held-out split.

    Over ``splits`` seeded splits (seeds seed, seed + 1, ...): the share of splits in which some
    innocent set's held-out half is accused above ``max_false_accusation``, the mean and largest
    worst-set held-out rate, and each attack's detection rate (min, mean, max). ``innocent``: set
    -> scores; ``evidence``: attack -> (scores, source [n]).
    """
    if splits < 1:
        raise ValueError(f"splits must be at least 1, got {splits}")
    worst, detections = [], {k: [] for k in evidence}
    for s in range(seed, seed + splits):
        split = {k: halves(len(v), s) for k, v in innocent.items()}
        t = choose_threshold({k: v.select(split[k][0]) for k, v in innocent.items()},
                             max_false_accusation, confidence)
        worst.append(max(false_accusation_rate(v.select(split[k][1]), t)
                         for k, v in innocent.items()))
        for k, (scores, source) in evidence.items():
            detections[k].append(detection_rate(scores, source, t))
    return {"splits": splits, "max_false_accusation": max_false_accusation,
            "confidence": confidence,
            "share_above_target": sum(w > max_false_accusation for w in worst) / splits,
            "worst_held_out_mean": sum(worst) / splits, "worst_held_out_max": max(worst),
            "detection": {k: {"min": min(d), "mean": sum(d) / splits, "max": max(d)}
                          for k, d in detections.items()}}
