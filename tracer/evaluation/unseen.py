"""Innocent inputs that a run's calibration never saw: does its threshold hold on them?

The calibrate stage sets the abstention threshold on clean, Gaussian (std 0.05), JPEG and
independent-attack sets. An investigator meets other innocent inputs too, and a threshold that
was fitted to the calibration sets could name somebody on them more often than the 1% it keeps
there. :data:`UNSEEN` is a panel of corruptions that no innocent set holds; :func:`unseen_images`
takes test images that no image set holds either; :func:`unseen_false_accusations` traces each
corruption of them and reports how often a copy is named at the run's threshold.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from tracer.abstention import false_accusation_rate
from tracer.innocent import innocent_evidence, innocent_image_order
from tracer.stages import traced_evidence
from tracer.transforms import (box_blur, brightness, contrast, downsample, gaussian_noise, mirror,
                               quantize, salt_and_pepper, shift, sign_noise, uniform_noise)

# name -> (images [n, C, H, W], seed) -> corrupted images; each unlike every calibration set
UNSEEN: dict[str, Callable[[Tensor, int], Tensor]] = {
    "blur_3": lambda x, s: box_blur(x, 3),
    "blur_5": lambda x, s: box_blur(x, 5),
    "contrast_0.5": lambda x, s: contrast(x, 0.5),
    "brightness_+0.2": lambda x, s: brightness(x, 0.2),
    "salt_and_pepper_2%": lambda x, s: salt_and_pepper(x, 0.02, s),
    "uniform_0.1": lambda x, s: uniform_noise(x, 0.1, s),
    "sign_0.05": lambda x, s: sign_noise(x, 0.05, s),
    "gaussian_0.1": lambda x, s: gaussian_noise(x, 0.1, s),   # twice the calibration set's std
    "mirror": lambda x, s: mirror(x),
    "shift_2": lambda x, s: shift(x, 2),
    "quantize_4": lambda x, s: quantize(x, 4),
    "downsample_2": lambda x, s: downsample(x, 2),
}


def unseen_images(num_test: int, calibration_num: int, wanted: int, seed: int) -> Tensor:
    """Indices of up to ``wanted`` test images that the calibrate stage's image sets, of
    ``calibration_num`` images each, do not hold."""
    return innocent_image_order(num_test, seed)[calibration_num:calibration_num + wanted]


def unseen_false_accusations(copies, x: Tensor, y: Tensor, index: Tensor, scorer: str,
                             threshold: float | None, seed: int = 0,
                             device: torch.device | str = "cpu") -> dict[str, float]:
    """Per corruption of :data:`UNSEEN`, the share of the corrupted images ``x`` [n, C, H, W]
    (labels ``y``, test indices ``index``) on which ``scorer`` names a copy at ``threshold``."""
    if not len(x):
        raise ValueError("no test images left outside the calibration sets")
    out = {}
    for name, corrupt in UNSEEN.items():
        ev = innocent_evidence(corrupt(x, seed), y, index, f"unseen_{name}")
        out[name] = false_accusation_rate(traced_evidence(copies, ev, device=device)
                                          .scores[scorer], threshold)
    return out
