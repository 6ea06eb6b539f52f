"""Innocent sets: inputs no candidate copy is the source of, on which a verdict must abstain.

Clean test images, the same images with Gaussian noise or JPEG compression (what an honest user
or a lossy channel does to an image), and adversarial examples made on an independently trained
classifier outside the candidate set. Each is an :class:`Evidence` with source -1 (none), so it
is traced exactly like real evidence.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from tracer.attacks.generate import AttackSpec
from tracer.evidence import Evidence

INNOCENT_SETS = ("clean", "gaussian", "jpeg", "independent")


@dataclass
class InnocentSpec:
    """Which innocent sets to trace, how to make them, and the false-accusation target.

    ``attack`` makes the independent set's adversarial examples (on a classifier outside the
    candidates); ``num`` images per set (the independent set: successful examples).
    """
    sets: list[str] = field(default_factory=lambda: list(INNOCENT_SETS))
    num: int = 400
    gaussian_std: float = 0.05
    jpeg_quality: int = 75
    attack: AttackSpec | None = None
    max_false_accusation: float = 0.01

    def __post_init__(self):
        unknown = set(self.sets) - set(INNOCENT_SETS)
        if unknown:
            raise ValueError(f"unknown innocent set(s) {sorted(unknown)}; known: {INNOCENT_SETS}")
        if self.num < 2:
            raise ValueError(f"innocent.num must be at least 2 (two halves), got {self.num}")


def gaussian_noise(x: Tensor, std: float, seed: int = 0) -> Tensor:
    """``x`` plus N(0, std^2) per pixel, clipped to [0, 1]."""
    if std <= 0:
        raise ValueError(f"gaussian noise std must be positive, got {std}")
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


def jpeg(x: Tensor, quality: int) -> Tensor:
    """Each image through a JPEG encode and decode at ``quality`` (1-95), as PIL does it."""
    if not 1 <= quality <= 95:
        raise ValueError(f"jpeg quality must be in 1..95, got {quality}")
    out = []
    for img in x:
        arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255
        out.append(torch.from_numpy(back.reshape(arr.shape)).permute(2, 0, 1))
    return torch.stack(out) if out else x.clone()


def innocent_evidence(x: Tensor, y: Tensor, clean_index: Tensor, name: str) -> Evidence:
    """Images none of the candidates is the source of, as evidence (source -1, 0 queries)."""
    n = len(x)
    return Evidence(x.float(), y.long(), y.long(), torch.full((n,), -1, dtype=torch.long),
                    torch.zeros(n, dtype=torch.long), clean_index.long(), attack=name,
                    params={"innocent": name})
