"""Innocent sets: inputs no candidate copy is the source of, on which a verdict must abstain.

Clean test images, the same images with Gaussian noise or JPEG compression (what an honest user
or a lossy channel does to an image), and adversarial examples made on an independently trained
classifier outside the candidate set. Each is an :class:`Evidence` with source -1 (none), so it
is traced exactly like real evidence.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from tracer.attacks.generate import AttackSpec
from tracer.evidence import Evidence

INNOCENT_SETS = ("clean", "gaussian", "jpeg", "independent")


@dataclass
class InnocentSpec:
    """Which innocent sets to trace, how to make them, and the false-accusation target.

    ``attack`` makes the independent set's adversarial examples (on a classifier outside the
    candidates); ``num`` test images behind each image set (clean, gaussian, jpeg) and
    ``num_adversarial`` successful examples in the independent set, the one that costs attacks.
    ``confidence``: the threshold keeps the upper confidence bound of each set's false-accusation
    rate within ``max_false_accusation`` (tracer.abstention); None: the rate seen on the
    calibration half.
    """
    sets: list[str] = field(default_factory=lambda: list(INNOCENT_SETS))
    num: int = 2000
    num_adversarial: int = 400
    gaussian_std: float = 0.05
    jpeg_quality: int = 75
    attack: AttackSpec | None = None
    max_false_accusation: float = 0.01
    confidence: float | None = 0.95

    def __post_init__(self):
        unknown = set(self.sets) - set(INNOCENT_SETS)
        if unknown:
            raise ValueError(f"unknown innocent set(s) {sorted(unknown)}; known: {INNOCENT_SETS}")
        for key in ("num", "num_adversarial"):
            if getattr(self, key) < 2:
                raise ValueError(f"innocent.{key} must be at least 2 (two halves), got "
                                 f"{getattr(self, key)}")
        if self.confidence is not None and not 0 < self.confidence < 1:
            raise ValueError(f"innocent.confidence must be in (0, 1) or null, got "
                             f"{self.confidence}")

    def size(self, name: str) -> int:
        """How many inputs innocent set ``name`` holds."""
        return self.num_adversarial if name == "independent" else self.num


def innocent_evidence(x: Tensor, y: Tensor, clean_index: Tensor, name: str) -> Evidence:
    """Images none of the candidates is the source of, as evidence (source -1, 0 queries)."""
    n = len(x)
    return Evidence(x.float(), y.long(), y.long(), torch.full((n,), -1, dtype=torch.long),
                    torch.zeros(n, dtype=torch.long), clean_index.long(), attack=name,
                    params={"innocent": name})
