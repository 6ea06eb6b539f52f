"""Innocent sets: inputs no candidate copy is the source of, on which a verdict must abstain.

Clean test images, the same images with Gaussian noise or JPEG compression (what an honest user
or a lossy channel does to an image), and adversarial examples made on an independently trained
classifier outside the candidate set: one set per attack (``independent_<attack>``), so that the
threshold sees what each family of attacks does to an innocent model (minimal decision-based,
deep white-box, score-based). Each is an :class:`Evidence` with source -1 (none), so it
is traced exactly like real evidence.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from tracer.attacks.generate import AttackSpec
from tracer.evidence import Evidence
from tracer.seeding import derived_seed

INNOCENT_SETS = ("clean", "gaussian", "jpeg", "independent")   # what ``sets`` may list
INDEPENDENT = "independent_"   # + an attack's name: that attack's independent set


@dataclass
class InnocentSpec:
    """Which innocent sets to trace, how to make them, and the false-accusation target.

    ``attacks`` make the independent sets' adversarial examples (on a classifier outside the
    candidates), one set each, when ``sets`` lists ``independent``; ``num`` test images behind
    each image set (clean, gaussian, jpeg) and ``num_adversarial`` successful examples in each
    independent set, the ones that cost attacks, or as many as ``num_adversarial_by_attack``
    names for its attack. A set whose calibration half is too small to bound 1% (fewer than
    ~300) puts the threshold above its largest score: cheap attacks (white-box) get more
    examples so that their set bounds a quantile, not a maximum.
    ``confidence``: the threshold keeps the upper confidence bound of each set's false-accusation
    rate within ``max_false_accusation`` (tracer.abstention); None: the rate seen on the
    calibration half.
    """
    sets: list[str] = field(default_factory=lambda: list(INNOCENT_SETS))
    num: int = 2000
    num_adversarial: int = 400
    num_adversarial_by_attack: dict[str, int] = field(default_factory=lambda: {"pgd": 2000})
    gaussian_std: float = 0.05
    jpeg_quality: int = 75
    attacks: list[AttackSpec] = field(default_factory=list)
    max_false_accusation: float = 0.01
    confidence: float | None = 0.95

    def __post_init__(self):
        unknown = set(self.sets) - set(INNOCENT_SETS)
        if unknown:
            raise ValueError(f"unknown innocent set(s) {sorted(unknown)}; known: {INNOCENT_SETS}")
        counts = {"num": self.num, "num_adversarial": self.num_adversarial,
                  **{f"num_adversarial_by_attack.{k}": v
                     for k, v in self.num_adversarial_by_attack.items()}}
        for key, n in counts.items():
            if n < 2:
                raise ValueError(f"innocent.{key} must be at least 2 (two halves), got {n}")
        if self.confidence is not None and not 0 < self.confidence < 1:
            raise ValueError(f"innocent.confidence must be in (0, 1) or null, got "
                             f"{self.confidence}")

    def names(self) -> list[str]:
        """Every innocent set: the image sets ``sets`` lists, then one independent set per
        attack."""
        images = [s for s in self.sets if s != "independent"]
        independent = [INDEPENDENT + a.name for a in self.attacks] if "independent" in self.sets \
            else []
        return images + independent

    def size(self, name: str) -> int:
        """How many inputs innocent set ``name`` holds."""
        if not name.startswith(INDEPENDENT):
            return self.num
        return self.num_adversarial_by_attack.get(name[len(INDEPENDENT):], self.num_adversarial)

    def attack(self, name: str) -> AttackSpec:
        """The attack that makes independent set ``name``."""
        for a in self.attacks:
            if INDEPENDENT + a.name == name:
                return a
        raise ValueError(f"unknown innocent set {name!r}; known: {self.names()}")


def innocent_image_order(num_test: int, seed: int) -> Tensor:
    """The seeded order in which the image sets (clean, gaussian, jpeg) take test images: each
    takes the first ``InnocentSpec.num``; images further down the order are in none of them."""
    g = torch.Generator().manual_seed(derived_seed(seed, "innocent_images"))
    return torch.randperm(num_test, generator=g)


def innocent_evidence(x: Tensor, y: Tensor, clean_index: Tensor, name: str) -> Evidence:
    """Images none of the candidates is the source of, as evidence (source -1, 0 queries)."""
    n = len(x)
    return Evidence(x.float(), y.long(), y.long(), torch.full((n,), -1, dtype=torch.long),
                    torch.zeros(n, dtype=torch.long), clean_index.long(), attack=name,
                    params={"innocent": name})
