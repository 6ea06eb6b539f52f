"""QEBA-S: HopSkipJump whose gradient estimate samples a low-frequency spatial subspace.

Li, Xu, Zhang, Yang and Li, "QEBA: Query-Efficient Boundary-Based Blackbox Attack", CVPR 2020.
Natural images' decision boundaries have most of their normal in low frequencies, so QEBA draws
each random direction on a grid ``ratio`` times coarser than the image and upsamples it
(bilinearly, the paper's spatial variant): the same queries estimate a gradient in a space
``ratio**2`` times smaller. Everything else (binary search, step size, budget) is HopSkipJump's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tracer.attacks.hsja import BatchedHopSkipJump
from tracer.attacks.oracle import HardLabelOracle


class QEBA(BatchedHopSkipJump):
    """``perturb(x, y) -> x_adv``, hard-label, L2, untargeted; ``ratio`` is the subspace's
    downsampling factor per side (1 gives HopSkipJump back)."""

    def __init__(self, predict: HardLabelOracle, ratio: int = 4, **hsja_params):
        if ratio < 1:
            raise ValueError(f"QEBA ratio must be >= 1, got {ratio}")
        super().__init__(predict, **hsja_params)
        self.ratio = ratio

    def _directions(self, b: int, num_eval: int, shape: torch.Size, gen: torch.Generator,
                    device: torch.device) -> Tensor:
        c, h, w = shape
        low = (max(1, h // self.ratio), max(1, w // self.ratio))
        z = torch.randn((b * num_eval, c, *low), generator=gen, device=device)
        u = F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
        u = u.view(b, num_eval, c, h, w)
        return u / u.flatten(2).norm(dim=2).view(b, num_eval, 1, 1, 1)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", ratio={self.ratio})"
