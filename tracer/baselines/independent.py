"""Baseline 1, naive copies: the classifier retrained from different seeds, no tracer.

A minimal-perturbation attack stops just past its own copy's decision boundary, so the verdict is
the copy the example fools by the smallest margin (``crossing_margin``). Copies trained from other
seeds have other boundaries; how far apart they are is all this baseline has to go on.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tracer.data import batches
from tracer.tracing import Scored, Scores


class IndependentCopies(nn.Module):
    """m classifiers; copy i outputs softmax(C_i(x)). Shape: outputs(x) [n, m, K]."""

    scorers = ("crossing_margin",)   # the rules trace() offers; the first is the default
    needs_clean_images = False       # the clean labels (the evidence's y_true) suffice

    def __init__(self, members: list[nn.Module], num_classes: int):
        super().__init__()
        self.members = nn.ModuleList(members)
        self._num_classes = int(num_classes)

    @property
    def num_copies(self) -> int:
        return len(self.members)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def member_output(self, index: int, x: Tensor) -> Tensor:
        return torch.softmax(self.members[index](x), dim=-1)

    def outputs(self, x: Tensor) -> Tensor:
        return torch.stack([self.member_output(i, x) for i in range(self.num_copies)], dim=1)

    def copy(self, index: int) -> nn.Module:
        if not 0 <= index < self.num_copies:
            raise IndexError(f"copy {index} out of range 0..{self.num_copies - 1}")
        return _Member(self, index)

    def sold(self, index: int) -> nn.Module:
        """Copy ``index`` as a module of its own: its classifier and nothing of the others."""
        self.copy(index)
        return SoldMember(self.members[index])

    @torch.no_grad()
    def trace(self, x: Tensor, *, clean_images: Tensor | None = None,
              clean_labels: Tensor | None = None, device: torch.device | str = "cpu") -> Scored:
        """Every candidate's label and score on evidence images ``x``; the verdict needs what
        each example shows (``clean_labels``), not the clean images."""
        if clean_labels is None:
            raise ValueError(f"tracing {type(self).__name__} needs the evidence's clean labels")
        out = _batched(self.outputs, x, 512, device)
        s = crossing_margin(out, clean_labels)
        return Scored(out.argmax(-1), {"crossing_margin": s}, s.value)


class _Member(nn.Module):
    """One buyer's copy of a baseline, an ordinary module an attacker can be handed."""

    def __init__(self, copies: IndependentCopies, index: int):
        super().__init__()
        self.copies, self.index = copies, index

    def forward(self, x: Tensor) -> Tensor:
        return self.copies.member_output(self.index, x)


def _batched(fn, x: Tensor, batch_size: int, device) -> Tensor:
    return torch.cat([fn(x[idx].to(device)).cpu() for idx in batches(len(x), batch_size)])


def crossing_margin(outputs: Tensor, y_clean: Tensor) -> Scores:
    """Higher for the copy the example fools by the smallest margin; the fooled copies are the
    eligible ones.

    A fooled copy scores -(p[its label] - p[y_clean]) in [-1, 0]; a copy still right scores
    -(p[y_clean] - p[runner-up]).
    Shape: outputs [n, m, K] (probabilities); y_clean [n] -> [n, m].
    """
    y = y_clean.view(-1, 1, 1).expand(*outputs.shape[:2], 1)
    p_clean = outputs.gather(-1, y).squeeze(-1)
    top2 = outputs.topk(2, dim=-1).values
    fooled = outputs.argmax(-1) != y.squeeze(-1)
    return Scores(torch.where(fooled, -(top2[..., 0] - p_clean), -(p_clean - top2[..., 1])),
                  fooled)


class SoldMember(nn.Module):
    """softmax(C_i(x * keep_i)) on its own (``keep`` None: the whole image)."""

    def __init__(self, member: nn.Module, keep: Tensor | None = None):
        super().__init__()
        self.member = member
        self.register_buffer("keep", None if keep is None else keep.float().clone())

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.member(x if self.keep is None else x * self.keep), dim=-1)
