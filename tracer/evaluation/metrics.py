"""Metrics of a tracing experiment; :class:`RunMetrics` is the schema of ``metrics.json``.

Every rate is a fraction in [0, 1] (never a percent string); a rate over an empty set is None.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from tracer.confidence import cross_fitted_confidence, expected_calibration_error
from tracer.evaluation.aggregate import aggregate_accuracy
from tracer.evaluation.num_copies import accuracy_vs_num_copies, monte_carlo_accuracy
from tracer.evidence import Evidence
from tracer.tracing import Scored, Scores, named


AGGREGATE_K = (1, 5, 10)


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
    scorer: str = "dol"
    trace_acc_by_scorer: dict = field(default_factory=dict)
    trace_acc_k: dict = field(default_factory=dict)   # k examples from one source -> accuracy
    trace_acc_k_by_scorer: dict = field(default_factory=dict)  # scorer -> k -> accuracy
    trace_acc_by_num_copies: dict = field(default_factory=dict)  # n <= m copies -> accuracy
    trace_acc_mc_by_num_copies: dict = field(default_factory=dict)  # the paper's MC estimate
    confidence_mean: float | None = None   # mean confidence of the verdicts (cross-fitted)
    ece: float | None = None               # expected calibration error of those confidences
    ks_d: float | None = None            # Kolmogorov-Smirnov D, source vs innocent DOLs
    dol_source_mean: float | None = None   # (a baseline's own score in place of DOL)
    dol_innocent_mean: float | None = None
    detection_rate: float | None = None    # the source named at the abstention threshold
    wrong_accusation_rate: float | None = None  # another copy named at that threshold
    adaptive: str = "none"                 # the attacker's evasion (attacks.adaptive)
    colluders: int = 1                     # buyers who attacked together (one evidence source)
    trace_any_colluder: float | None = None   # the verdict names one of them
    trace_all_colluders: float | None = None  # the top-|group| scores are exactly the group
    l2_median: float | None = None         # size of the perturbation x_adv - x, per example
    l2_mean: float | None = None
    linf_median: float | None = None
    linf_mean: float | None = None


@dataclass
class RunMetrics:
    dataset: str
    model: str
    method: str
    num_copies: int
    alpha: float | None          # None for a baseline: it has no tracer to weigh
    seed: int
    base_clean_acc: float | None   # None for naive copies: there is no one C
    copy_clean_acc: list[float]
    scorer: str | None = None
    theta_deg: float | None = None   # the VAE tracer's L_trap angle; None for other methods
    keying: str | None = None   # the tracer's copies: permutation or projection; None: a baseline
    classifiers: str | None = None  # the tracer's: shared (one C) or orthogonal (C_i per copy)
    abstain_threshold: float | None = None  # below it tracer names nobody (innocent sets)
    innocent: dict = field(default_factory=dict)  # set -> false_accusation_rate, ...
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


def perturbation_norms(x_adv: Tensor, x: Tensor) -> dict[str, float | None]:
    """Median and mean L2 and Linf norms of ``x_adv - x`` over the examples (None if none)."""
    if len(x_adv) == 0:
        return dict.fromkeys(("l2_median", "l2_mean", "linf_median", "linf_mean"))
    d = (x_adv - x).flatten(1).float()
    l2, linf = d.norm(dim=1), d.abs().max(dim=1).values
    return {"l2_median": float(l2.median()), "l2_mean": float(l2.mean()),
            "linf_median": float(linf.median()), "linf_mean": float(linf.mean())}


def collusion_rates(scores: Scores, source: Tensor,
                    groups: list[list[int]]) -> tuple[float | None, float | None]:
    """For evidence made by groups of colluders (``source``: each example's group's first copy):
    how often the verdict names a colluder, and how often the top-|group| candidates are exactly
    the colluders. Shape: source [n]."""
    first = {g[0]: g for g in groups}
    if not set(source.tolist()) <= set(first):
        raise ValueError("evidence names a source that starts none of the collusion groups")
    k = len(groups[0])
    members = torch.zeros_like(scores.value, dtype=torch.bool)
    for i, s in enumerate(source.tolist()):
        members[i, first[s]] = True
    top = scores.order()[:, :k]
    verdicts = named(scores)
    any_named = members[torch.arange(len(source)), verdicts.clamp_min(0)] & (verdicts >= 0)
    all_named = members.gather(1, top).all(dim=1)
    return rate(any_named), rate(all_named)


def copy_counts(m: int) -> list[int]:
    """The numbers of copies the accuracy-vs-copies curve is reported at: every n = 2..m up to
    m = 20, beyond that 2, 5, 10, 20, 50, ... and m itself."""
    if m <= 20:
        return list(range(2, m + 1))
    grid = [b * 10 ** e for e in range(len(str(m))) for b in (1, 2, 5)]
    return sorted({n for n in grid if 2 <= n < m} | {m})


def trace_metrics(traced: Scored, evidence: Evidence, num_tried: int,
                  scorer: str = "dol", norms: dict | None = None,
                  groups: list[list[int]] | None = None) -> AttackMetrics:
    """Tracing accuracy with ``scorer`` (all / transferable / non-transferable) and with every
    scorer in ``traced``, the transfer rate, and the source vs innocent statistics (DOL for the
    tracer); ``norms`` are the perturbation sizes (:func:`perturbation_norms`), known to the
    attack stage only; ``groups`` the collusion groups the evidence came from."""
    from scipy.stats import ks_2samp
    if scorer not in traced.scores:
        raise ValueError(f"unknown scorer {scorer!r} for these copies; known: {sorted(traced.scores)}")
    n = len(evidence)
    scores = traced.scores[scorer]
    correct = named(scores) == evidence.source
    conf = cross_fitted_confidence(scores, evidence.source) if n >= 20 else None
    trans = transferable(traced.labels, evidence)
    is_source = torch.zeros_like(traced.statistic, dtype=torch.bool)
    is_source[torch.arange(n), evidence.source] = True
    src, inn = traced.statistic[is_source], traced.statistic[~is_source]
    sizes = copy_counts(scores.num_candidates)
    by_copies = accuracy_vs_num_copies(scores, evidence.source, sizes) if n else {}
    elig = scores.eligibility()
    mc = monte_carlo_accuracy((elig[is_source], scores.value[is_source]),
                              (elig[~is_source], scores.value[~is_source]), sizes) \
        if n and sizes else {}
    ks = float(ks_2samp(src.numpy(), inn.numpy()).statistic) if n and inn.numel() else None
    by_scorer = {name: rate(named(s) == evidence.source) for name, s in traced.scores.items()}
    k_by_scorer = {name: {str(k): aggregate_accuracy(s, evidence.source, k) for k in AGGREGATE_K}
                   for name, s in traced.scores.items()}
    colluders = len(groups[0]) if groups else 1
    any_c, all_c = collusion_rates(scores, evidence.source, groups) \
        if colluders > 1 and n else (None, None)
    return AttackMetrics(
        colluders=colluders, trace_any_colluder=any_c, trace_all_colluders=all_c,
        success_rate=n / num_tried if num_tried else None, transfer_rate=rate(trans),
        trace_acc=rate(correct), trace_acc_transferable=rate(correct[trans]),
        trace_acc_nontransferable=rate(correct[~trans]), num_evidence=n, num_tried=num_tried,
        mean_queries=float(evidence.queries.float().mean()) if n else None, scorer=scorer,
        trace_acc_by_scorer=by_scorer,
        trace_acc_k=k_by_scorer[scorer], trace_acc_k_by_scorer=k_by_scorer,
        trace_acc_by_num_copies={str(k): v for k, v in by_copies.items()},
        trace_acc_mc_by_num_copies={str(k): v for k, v in mc.items()},
        confidence_mean=float(conf.mean()) if conf is not None else None,
        ece=expected_calibration_error(conf, correct) if conf is not None else None, ks_d=ks,
        dol_source_mean=float(src.mean()) if n else None,
        dol_innocent_mean=float(inn.mean()) if inn.numel() else None, **(norms or {}))
