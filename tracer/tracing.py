"""Tracing: score every candidate copy on the evidence and name the source (paper.md, "Tracing").

For candidate i: o = M_i(x_adv); att, cln = the top-1 and top-2 labels of o;
``DOL_i = T_i(x_adv)[att] - T_i(x_adv)[cln]``; the paper's verdict is argmax_i DOL_i.

Scorers turn one pass over the evidence (:class:`Observation`) into scores [n, m], higher meaning
more likely the source:
- ``dol``: the paper's rule.
- ``dol_disagree`` (ours, docs/method.md): the copies whose label differs from their
  classifier's (C's, or the copy's own C_i's) come first, ordered by DOL; the others follow, ordered by DOL. An attack
  that crosses only its own copy's boundary leaves exactly one copy disagreeing with C.
- ``logit_dol`` (ours): DOL read before T_0's tanh, scaled by the spread of T_0's pre-activations
  on that example. Far past the boundary (white-box attacks) tanh saturates and the paper's DOL
  loses what the pre-activations still show.
- ``logit_dol_label`` (ours): as ``logit_dol`` with cln = the image's clean label (what the
  investigator sees the image show) instead of each copy's second label. Needs those labels.
- ``aligned_disagree`` (ours, residual tracer only): as ``dol_disagree``, with DOL replaced by the
  alignment of the denoiser's residual R(x) with the copy's (att, cln) direction,
  ``(P_att - P_cln) . R(x) / (sqrt 2 |R(x)|)``. An attack on copy i pushes R(x) along that one
  direction; noise spreads over all of them, so noisy innocent images that happen to flip a copy
  score low (docs/method.md, "Deciding or abstaining").
- ``debiased_disagree`` (ours, residual tracer only; its default): as ``aligned_disagree`` on the
  debiased residual R(x) - R(x - R(x)). R also answers an image's own structure; that part
  dilutes a small attack's alignment and cancels here (docs/method.md, section 5).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from tracer.data import batches
from tracer.models.copies import CopyFamily


@dataclass
class Observation:
    """What one pass of C and T_0 over the evidence tells about every candidate.

    Shape: dol, logit_dol, labels, logit_dol_label, aligned, debiased, base_labels [n, m]
    (base_labels: the label of each copy's classifier alone, C's or its own C_i's).
    ``logit_dol_label`` is None unless the clean labels were given, ``aligned`` and
    ``debiased`` unless the tracer is the residual one.
    """
    dol: Tensor
    labels: Tensor
    base_labels: Tensor
    logit_dol: Tensor
    logit_dol_label: Tensor | None = None
    aligned: Tensor | None = None
    debiased: Tensor | None = None


def dol_from_outputs(outputs: Tensor, tracer_outputs: Tensor) -> Tensor:
    """DOL for every (example, candidate) from the copies' outputs and tracer outputs.

    Shape: outputs, tracer_outputs [n, m, K] -> [n, m].
    """
    top2 = outputs.topk(2, dim=-1).indices
    t = tracer_outputs.gather(-1, top2)
    return t[..., 0] - t[..., 1]


def logit_dol_from_outputs(outputs: Tensor, pre_activations: Tensor,
                           clean_labels: Tensor | None = None) -> Tensor:
    """DOL on each copy's tracer pre-activations z, in units of z's spread over its K outputs
    per example and copy. cln is each copy's second label, or ``clean_labels`` when given.

    Shape: outputs, pre_activations [n, m, K]; clean_labels [n] -> [n, m].
    """
    z = pre_activations / pre_activations.std(dim=-1, keepdim=True).clamp_min(1e-12)
    att = outputs.argmax(-1, keepdim=True)
    if clean_labels is None:
        cln = outputs.topk(2, dim=-1).indices[..., 1:]
    else:
        cln = clean_labels.view(-1, 1, 1).expand_as(att)
    return (z.gather(-1, att) - z.gather(-1, cln)).squeeze(-1)


@torch.no_grad()
def observe(family: CopyFamily, x: Tensor, clean_labels: Tensor | None = None,
            batch_size: int = 512, device: torch.device | str = "cpu") -> Observation:
    """DOLs and labels of every candidate copy, from one pass of C and T_0 per batch.
    ``clean_labels`` [n] (optional): what each image shows, for ``logit_dol_label``."""
    cols: dict[str, list[Tensor]] = {k: [] for k in ("dol", "labels", "base", "logit", "label",
                                                     "aligned", "debiased")}
    for idx in batches(len(x), batch_size):
        xb = x[idx].to(device)
        c = family.base_outputs(xb)
        if family.has_residual:
            z, scale, z_debiased, scale_debiased = family.residual_pre_activations(xb)
        else:
            (z, scale), z_debiased = family.tracer_pre_activations(xb), None
        t = torch.tanh(z)
        out = c + family.alpha * t
        cols["dol"].append(dol_from_outputs(out, t).cpu())
        cols["labels"].append(out.argmax(-1).cpu())
        cols["base"].append(c.argmax(-1).expand_as(out[..., 0]).cpu())
        cols["logit"].append(logit_dol_from_outputs(out, z).cpu())
        if clean_labels is not None:
            cols["label"].append(logit_dol_from_outputs(out, z, clean_labels[idx].to(device)).cpu())
        if scale is not None:
            cols["aligned"].append(aligned_from_outputs(out, z, scale).cpu())
            cols["debiased"].append(aligned_from_outputs(out, z_debiased, scale_debiased).cpu())
    joined = {k: torch.cat(v) if v else None for k, v in cols.items()}
    return Observation(joined["dol"], joined["labels"], joined["base"], joined["logit"],
                       joined["label"], joined["aligned"], joined["debiased"])


def aligned_from_outputs(outputs: Tensor, pre_activations: Tensor, scale: Tensor) -> Tensor:
    """(z_att - z_cln) / (sqrt 2 * scale) per copy: with z = gain * P_i r and scale = gain * |r|,
    the cosine between the residual r (R(x), or the debiased one) and the copy's (att, cln)
    direction P_att - P_cln (whose norm is about sqrt 2); att and cln come from ``outputs``.

    Shape: outputs, pre_activations [n, m, K]; scale [n] -> [n, m].
    """
    top2 = outputs.topk(2, dim=-1).indices
    z2 = pre_activations.gather(-1, top2)
    return (z2[..., 0] - z2[..., 1]) / (2 ** 0.5 * scale.clamp_min(1e-12).unsqueeze(1))


def dol_score(family: CopyFamily, x: Tensor, batch_size: int = 512,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """The paper's DOL scores and every candidate's labels. Shape: -> ([n, m], [n, m])."""
    obs = observe(family, x, batch_size=batch_size, device=device)
    return obs.dol, obs.labels


def _dol(obs: Observation) -> Tensor:
    return obs.dol


def _disagreeing_first(obs: Observation, values: Tensor) -> Tensor:
    # values lie in [-2, 2], so an offset of 4 puts every disagreeing copy above every other.
    return values + 4.0 * (obs.labels != obs.base_labels).float()


def _dol_disagree(obs: Observation) -> Tensor:
    return _disagreeing_first(obs, obs.dol)


def _needs_residual(name: str, values: Tensor | None) -> Tensor:
    if values is None:
        raise ValueError(f"scorer {name} needs the residual tracer (separation=residual)")
    return values


def _aligned_disagree(obs: Observation) -> Tensor:
    return _disagreeing_first(obs, _needs_residual("aligned_disagree", obs.aligned))


def _debiased_disagree(obs: Observation) -> Tensor:
    return _disagreeing_first(obs, _needs_residual("debiased_disagree", obs.debiased))


def _logit_dol(obs: Observation) -> Tensor:
    return obs.logit_dol


def _logit_dol_label(obs: Observation) -> Tensor:
    if obs.logit_dol_label is None:
        raise ValueError("scorer logit_dol_label needs the evidence's clean labels "
                         "(observe(..., clean_labels=...))")
    return obs.logit_dol_label


SCORERS: dict[str, Callable[[Observation], Tensor]] = {
    "dol": _dol, "dol_disagree": _dol_disagree, "logit_dol": _logit_dol,
    "logit_dol_label": _logit_dol_label, "aligned_disagree": _aligned_disagree,
    "debiased_disagree": _debiased_disagree}


def score(obs: Observation, scorer: str = "dol") -> Tensor:
    """Scores [n, m] of scorer ``scorer`` (one of SCORERS)."""
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; known: {sorted(SCORERS)}")
    return SCORERS[scorer](obs)


@dataclass
class Scored:
    """What tracing makes of one evidence set, whatever the copies are (tracer or a baseline).

    Shape: labels, statistic and every entry of scores [n, m]. ``statistic`` is the
    per-candidate value whose source vs innocent distributions the metrics compare (DOL for the
    tracer, the baseline's own score for a baseline).
    """
    labels: Tensor
    scores: dict[str, Tensor]
    statistic: Tensor


def scored(obs: Observation) -> Scored:
    """Every scorer that ``obs`` supports (``logit_dol_label`` only with clean labels,
    ``aligned_disagree`` and ``debiased_disagree`` only for the residual tracer)."""
    needs = {"logit_dol_label": obs.logit_dol_label, "aligned_disagree": obs.aligned,
             "debiased_disagree": obs.debiased}
    usable = [n for n in SCORERS if needs.get(n, obs.dol) is not None]
    return Scored(obs.labels, {n: score(obs, n) for n in usable}, obs.dol)


def verdict(scores: Tensor, abstain_below: float | None = None) -> tuple[Tensor, Tensor]:
    """The highest-scoring candidate per example, and whether tracer abstains: when two or more
    candidates share the top score (DOL cannot tell them apart, and naming the lower index
    would favour copy 0), or when the top score is below ``abstain_below`` (None: never).

    Shape: scores [n, m] -> (index [n], abstained [n] bool).
    """
    top, index = scores.max(dim=1)
    abstained = (scores == top.unsqueeze(1)).sum(dim=1) > 1
    if abstain_below is not None:
        abstained |= top < abstain_below
    return index, abstained


def named(scores: Tensor, abstain_below: float | None = None) -> Tensor:
    """The copy each verdict names, -1 where tracer abstains. Shape: [n, m] -> [n]."""
    index, abstained = verdict(scores, abstain_below)
    return torch.where(abstained, torch.full_like(index, -1), index)
