"""Baseline 2, random-mask watermarking (Cheng et al., "Identification of the Adversary from a
Single Adversarial Example", ICML 2023), in its data-limited form (the clean image is known).

Copy i sees ``x * keep_i``: a secret random set of input positions is zeroed before the
classifier, which is C fine-tuned on so-masked images. Copy i cannot see its masked positions, so
an attack on copy i has no reason to change them: a gradient there is exactly zero, a query-based
estimate only noise. The verdict is the fooled copy whose masked positions the example changed
least (``mask_change``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tracer.baselines.independent import IndependentCopies, SoldMember
from tracer.tracing import Scored, Scores


class InputMask(nn.Module):
    """``model(x * keep)``: the module a masked copy's classifier is fine-tuned and run as."""

    def __init__(self, model: nn.Module, keep: Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("keep", keep.float().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x * self.keep)


def random_masks(num_copies: int, shape: tuple[int, ...], masked_fraction: float,
                 seed: int = 0) -> Tensor:
    """One keep-mask per copy: 0 at a random ``masked_fraction`` of an image's positions (at
    least one), 1 elsewhere.

    Shape: -> [num_copies, *shape] float.
    """
    if not 0 < masked_fraction < 1:
        raise ValueError(f"masked_fraction must be in (0, 1), got {masked_fraction}")
    size = int(torch.tensor(shape).prod())
    masked_dims = max(1, round(masked_fraction * size))
    g = torch.Generator().manual_seed(seed)
    keep = torch.ones(num_copies, size)
    for i in range(num_copies):
        keep[i, torch.randperm(size, generator=g)[:masked_dims]] = 0.0
    return keep.view(num_copies, *shape)


class MaskedCopies(IndependentCopies):
    """m fine-tuned classifiers, copy i outputs softmax(C_i(x * keep_i)).

    Shape: keep [m, C, H, W] (1 = seen, 0 = masked).
    """

    scorers = ("mask_change", "crossing_margin")
    needs_clean_images = True   # mask_change compares the evidence with its clean image

    def __init__(self, members: list[nn.Module], keep: Tensor, num_classes: int):
        super().__init__(members, num_classes)
        if keep.shape[0] != len(members):
            raise ValueError(f"{keep.shape[0]} masks for {len(members)} copies")
        self.register_buffer("keep", keep.float().clone())

    def member_output(self, index: int, x: Tensor) -> Tensor:
        return torch.softmax(self.members[index](x * self.keep[index]), dim=-1)

    def sold(self, index: int) -> nn.Module:
        self.copy(index)
        return SoldMember(self.members[index], self.keep[index])

    @torch.no_grad()
    def trace(self, x: Tensor, *, clean_images: Tensor | None = None,
              clean_labels: Tensor | None = None, device: torch.device | str = "cpu") -> Scored:
        if clean_images is None:
            raise ValueError("tracing MaskedCopies needs each example's clean image")
        traced = super().trace(x, clean_labels=clean_labels, device=device)
        s = mask_change(x, clean_images, self.keep.cpu(), traced.labels, clean_labels)
        return Scored(traced.labels, {"mask_change": s, **traced.scores}, s.value)


def mask_change(x_adv: Tensor, x_clean: Tensor, keep: Tensor, labels: Tensor,
                y_clean: Tensor) -> Scores:
    """Higher for the fooled copy whose masked positions the example changed least; the fooled
    copies are the eligible ones.

    Every copy scores -mean|x_adv - x| over its masked positions (in [-1, 0] for images in
    [0, 1]). Shape: x_adv, x_clean [n, C, H, W]; keep [m, C, H, W]; labels [n, m]; y_clean [n]
    -> [n, m].
    """
    diff = (x_adv - x_clean).abs().flatten(1)
    hidden = (1.0 - keep).flatten(1)
    change = diff @ hidden.T / hidden.sum(dim=1).clamp_min(1.0)
    return Scores(-change, labels != y_clean.unsqueeze(1))
