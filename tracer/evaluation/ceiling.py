"""How much of its source an attack's evidence holds for a scorer fitted to the copies' readings.

Every scorer of :mod:`tracer.tracing` is a hand-made rule on a few per-copy readings of one
example (the spread, the flip, the margin, ...). Here a rule is *fitted* instead: a score per
copy, the same function of that copy's readings for every copy (so it ranks any number of
copies and needs no key), trained so that the source ranks first (a softmax over the copies).
Fitted on examples of the very attack it is then scored on (cross-validated: never on the same
example), it says how far a rule on these readings can get on that attack; where even that
stays far below a figure, the readings (the copies themselves) must change, not the rule
(docs/method.md section 18). It is a yardstick, not a proof: a linear or one-layer score does
not express every rule (the default's gating beats it on deep white-box evidence). Fitted on
the *other* attacks only, it says whether a fitted rule would carry over to an attack it never
saw.

An investigation tool, not a tracer: a fitted rule has no key test, so it bounds top-1 only.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tracer.data import batches
from tracer.models.copies import ProjectedCopies
from tracer.tracing import (aligned_from_outputs, dol_from_outputs, flip_from_outputs,
                            margin_from_outputs, spread_from_outputs)

# what each copy's readings hold, in order; each also enters minus its mean over the copies and
# as its rank among them (what a rule comparing copies would use)
READINGS = ("flip", "flip_debiased", "spread", "spread_debiased", "aligned", "aligned_debiased",
            "margin", "log_margin", "disagrees", "output_lean", "pre_activation_lean", "dol",
            "second_label_lean", "is_second_label")


@torch.no_grad()
def copy_readings(copies: ProjectedCopies, x: Tensor, batch_size: int = 500,
                  device: torch.device | str = "cpu") -> Tensor:
    """Every copy's readings of every example (``READINGS``, then each minus the copies' mean,
    then each one's rank among the copies in [0, 1]).

    Shape: x [n, C, H, W] -> [n, m, 3 * len(READINGS)].
    """
    if not isinstance(copies, ProjectedCopies):
        raise ValueError("copy readings need projection keys (separation.keying=projection)")
    out: list[Tensor] = []
    for idx in batches(len(x), batch_size):
        xb = x[idx].to(device)
        base = copies.base_outputs(xb)
        features, debiased = copies.tracer.features(xb, debiased=True)
        answered = copies.without_common(features)
        debiased = copies.without_common(debiased)
        z = copies.tracer.gain * copies.keyed(features)
        outputs = base + copies.alpha * torch.tanh(z)
        za, zd = copies.keyed(answered), copies.keyed(debiased)
        sa, sd = answered.norm(dim=1), debiased.norm(dim=1)
        label = outputs.argmax(-1, keepdim=True)
        ranked = base.topk(2, dim=-1).indices.expand(-1, outputs.shape[1], -1)
        first, second = ranked[..., :1], ranked[..., 1:]
        margin = margin_from_outputs(outputs)

        def lean(values: Tensor, to: Tensor) -> Tensor:
            return (values.gather(-1, label) - values.gather(-1, to)).squeeze(-1)

        rows = torch.stack([
            flip_from_outputs(outputs, base, za, sa), flip_from_outputs(outputs, base, zd, sd),
            spread_from_outputs(outputs, za, sa), spread_from_outputs(outputs, zd, sd),
            aligned_from_outputs(outputs, za, sa), aligned_from_outputs(outputs, zd, sd),
            margin, margin.clamp_min(1e-4).log(), (label != first).squeeze(-1).float(),
            lean(outputs, first), lean(z, first), dol_from_outputs(outputs, torch.tanh(z)),
            lean(za, second) / sa.clamp_min(1e-12).unsqueeze(1),
            (label == second).squeeze(-1).float()], dim=-1)
        out.append(with_comparisons(rows).cpu())
    return torch.cat(out)


def with_comparisons(readings: Tensor) -> Tensor:
    """Each reading beside itself minus the copies' mean and its rank among the copies (0 the
    lowest, 1 the highest). Shape: [n, m, p] -> [n, m, 3p]."""
    m = readings.shape[1]
    rank = readings.argsort(dim=1).argsort(dim=1).float() / max(m - 1, 1)
    return torch.cat([readings, readings - readings.mean(dim=1, keepdim=True), rank], dim=-1)


class FittedScorer(nn.Module):
    """A score per copy from its readings [n, m, p] -> [n, m]: standardised, then linear
    (``hidden`` 0) or one hidden layer, shared by every copy."""

    def __init__(self, mean: Tensor, std: Tensor, hidden: int = 0):
        super().__init__()
        p = len(mean)
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clamp_min(1e-6).clone())
        self.net = nn.Linear(p, 1) if hidden == 0 else nn.Sequential(
            nn.Linear(p, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, readings: Tensor) -> Tensor:
        return self.net((readings - self.mean) / self.std).squeeze(-1)


def fit_scorer(readings: Tensor, sources: Tensor, *, hidden: int = 0, epochs: int = 300,
               lr: float = 1e-2, weight_decay: float = 1e-3, seed: int = 0) -> FittedScorer:
    """The scorer under which the source ranks first as often as it can: cross-entropy of a
    softmax over each example's copies, full batch (Adam, ``weight_decay`` against fitting the
    few hundred examples of one attack by heart).

    Shape: readings [n, m, p]; sources [n] (indices into the m copies).
    """
    _check(readings, sources)
    if hidden < 0 or epochs < 1:
        raise ValueError(f"hidden must be >= 0 and epochs >= 1, got {hidden} and {epochs}")
    torch.manual_seed(seed)
    flat = readings.reshape(-1, readings.shape[-1])
    scorer = FittedScorer(flat.mean(0), flat.std(0), hidden)
    opt = torch.optim.Adam(scorer.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(scorer(readings), sources).backward()
        opt.step()
    return scorer.eval()


def held_out_top1(readings: Tensor, sources: Tensor, *, folds: int = 5,
                  also: tuple[Tensor, Tensor] | None = None, hidden: int = 0,
                  seed: int = 0) -> float:
    """Top-1 of a scorer fitted on the other folds of these examples (plus ``also``'s, other
    evidence it may learn from: readings, sources), each example scored by the fit that never
    saw it. Shape: readings [n, m, p]; sources [n]."""
    _check(readings, sources)
    if not 2 <= folds <= len(sources):
        raise ValueError(f"folds must lie in 2..{len(sources)} (the examples), got {folds}")
    order = torch.randperm(len(sources), generator=torch.Generator().manual_seed(seed))
    hits = 0
    for fold in order.chunk(folds):
        train = torch.ones(len(sources), dtype=torch.bool)
        train[fold] = False
        x, y = readings[train], sources[train]
        if also is not None:
            x, y = torch.cat([x, also[0]]), torch.cat([y, also[1]])
        scorer = fit_scorer(x, y, hidden=hidden, seed=seed)
        with torch.no_grad():
            hits += int((scorer(readings[fold]).argmax(1) == sources[fold]).sum())
    return hits / len(sources)


def _check(readings: Tensor, sources: Tensor) -> None:
    if readings.ndim != 3 or sources.ndim != 1 or len(readings) != len(sources):
        raise ValueError(f"readings must be [n, m, p] and sources [n], got "
                         f"{tuple(readings.shape)} and {tuple(sources.shape)}")
    if len(sources) and not (0 <= int(sources.min()) and int(sources.max()) < readings.shape[1]):
        raise ValueError(f"sources must index the {readings.shape[1]} copies")
