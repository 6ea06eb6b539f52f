"""Tracing: score every candidate copy on the evidence and name the source (paper.md, "Tracing").

For candidate i: o = M_i(x_adv); att, cln = the top-1 and top-2 labels of o;
``DOL_i = T_i(x_adv)[att] - T_i(x_adv)[cln]``; the verdict is argmax_i DOL_i.
"""
from __future__ import annotations

import torch
from torch import Tensor

from tracer.data import batches
from tracer.models.copies import CopyFamily


def dol_from_outputs(outputs: Tensor, tracer_outputs: Tensor) -> Tensor:
    """DOL for every (example, candidate) from the copies' outputs and tracer outputs.

    Shape: outputs, tracer_outputs [n, m, K] -> [n, m].
    """
    top2 = outputs.topk(2, dim=-1).indices
    t = tracer_outputs.gather(-1, top2)
    return t[..., 0] - t[..., 1]


@torch.no_grad()
def dol_score(family: CopyFamily, x: Tensor, batch_size: int = 512,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """DOL scores and labels of every candidate copy, from one pass of C and T_0 per batch.

    Shape: x [n, C, H, W] -> (scores [n, m], labels [n, m]); higher score = more likely source.
    """
    scores, labels = [], []
    for idx in batches(len(x), batch_size):
        c, t0 = family.parts(x[idx].to(device))
        t = family.permuted(t0)
        out = c.unsqueeze(1) + family.alpha * t
        scores.append(dol_from_outputs(out, t).cpu())
        labels.append(out.argmax(-1).cpu())
    return torch.cat(scores), torch.cat(labels)


def verdict(scores: Tensor, abstain_below: float | None = None) -> tuple[Tensor, Tensor]:
    """The highest-scoring candidate per example, and whether tracer abstains (its top score is
    below ``abstain_below``; never when that is None, as in the paper).

    Shape: scores [n, m] -> (index [n], abstained [n] bool).
    """
    top, index = scores.max(dim=1)
    if abstain_below is None:
        return index, torch.zeros_like(index, dtype=torch.bool)
    return index, top < abstain_below
