"""Metrics of a tracing experiment; :class:`RunMetrics` is the schema of ``metrics.json``.

Every rate is a fraction in [0, 1] (never a percent string); a rate over an empty set is None.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from tracer.evidence import Evidence
from tracer.tracing import verdict


@dataclass
class AttackMetrics:
    success_rate: float | None
    transfer_rate: float | None
    trace_acc: float | None
    trace_acc_transferable: float | None
    trace_acc_nontransferable: float | None
    num_evidence: int
    num_tried: int
    mean_queries: float | None
    ks_d: float | None = None            # Kolmogorov-Smirnov D, source vs innocent DOLs
    dol_source_mean: float | None = None
    dol_innocent_mean: float | None = None


@dataclass
class RunMetrics:
    dataset: str
    model: str
    method: str
    num_copies: int
    alpha: float
    seed: int
    base_clean_acc: float
    copy_clean_acc: list[float]
    attacks: dict[str, AttackMetrics] = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def rate(mask: Tensor) -> float | None:
    """Mean of a bool tensor, or None when it is empty."""
    return float(mask.float().mean()) if mask.numel() else None


def transferable(labels: Tensor, evidence: Evidence) -> Tensor:
    """Whether each example also fools at least one copy other than its source.

    Shape: labels [n, m] (every copy's label for each example) -> [n] bool.
    """
    fooled = labels != evidence.y_true.unsqueeze(1)
    others = torch.ones_like(fooled)
    others[torch.arange(len(fooled)), evidence.source] = False
    return (fooled & others).any(dim=1)


def trace_metrics(scores: Tensor, labels: Tensor, evidence: Evidence, num_tried: int) -> AttackMetrics:
    """Tracing accuracy (all / transferable / non-transferable), transfer rate and the source vs
    innocent DOL statistics. Shape: scores, labels [n, m]."""
    from scipy.stats import ks_2samp
    n = len(evidence)
    index, _ = verdict(scores)
    correct = index == evidence.source
    trans = transferable(labels, evidence)
    is_source = torch.zeros_like(scores, dtype=torch.bool)
    is_source[torch.arange(n), evidence.source] = True
    src, inn = scores[is_source], scores[~is_source]
    ks = float(ks_2samp(src.numpy(), inn.numpy()).statistic) if n and inn.numel() else None
    return AttackMetrics(
        success_rate=n / num_tried if num_tried else None, transfer_rate=rate(trans),
        trace_acc=rate(correct), trace_acc_transferable=rate(correct[trans]),
        trace_acc_nontransferable=rate(correct[~trans]), num_evidence=n, num_tried=num_tried,
        mean_queries=float(evidence.queries.float().mean()) if n else None, ks_d=ks,
        dol_source_mean=float(src.mean()) if n else None,
        dol_innocent_mean=float(inn.mean()) if inn.numel() else None)
