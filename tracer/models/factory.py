"""Plain constructor arguments for every module of a set of copies.

A run's manifest stores an :class:`InputSpec`, a :class:`ModelSpec` (C) and a :class:`TracerSpec`
(T_0 and how copies mix it in) as JSON; rebuilding from them needs no pickle and no Hydra, so
checkpoints stay loadable with ``weights_only=True``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tracer.models.backbones import Normalize, Resize, backbone
from tracer.models.copies import (OUTPUT_NORMS, OutputNorm, PermutedCopies, ProjectedCopies,
                                  TracerCopies)
from tracer.models.residual import READS
from tracer.models.targets import build_target, check_target


@dataclass
class InputSpec:
    """What the data set fixes: image shape [C, H, W], K classes, per-channel mean and std."""
    shape: list[int]
    num_classes: int
    mean: list[float]
    std: list[float]


@dataclass
class ModelSpec:
    """The classifier C: a built-in backbone ``arch``, or an allow-listed import path ``target``
    (tracer.models.targets; then ``arch`` is None), with its keyword arguments.

    resize: the side images are resized to before C sees them (architectures that pool below
    28 pixels); checkpoint: a trained C's state dict to adopt instead of training one.
    """
    arch: str | None = "small_cnn"
    kwargs: dict = field(default_factory=lambda: {"width": 16, "hidden": 128})
    target: str | None = None
    resize: int | None = None
    checkpoint: str | None = None

    def __post_init__(self):
        if (self.arch is None) == (self.target is None):
            raise ValueError("model: set exactly one of arch (a tracer backbone) and _target_ "
                             f"(an import path); got arch={self.arch!r}, "
                             f"_target_={self.target!r}")
        if self.target is not None:
            check_target(self.target, self.kwargs)

    @property
    def name(self) -> str:
        return self.arch or self.target


@dataclass
class TracerSpec:
    """The base tracer T_0 (which one: the separation method) and how the copies mix it with C.

    output_norm/temperature: how C's logits are mapped to [0, 1] before alpha * T_i is added.
    """
    width: int = 16         # channels of the residual tracer's R (the VAE's encoder, decoder)
    depth: int = 5          # residual: conv layers of the noise predictor
    gain: float = 20.0      # residual: T_0 = tanh(gain * P F(x))
    reads: str = "residual"  # residual: F(x) = R(x); debiased: R(x) - R(x - R(x))
    output_norm: str = "minmax"
    temperature: float = 1.0

    def __post_init__(self):
        # checked here, from the config, not when the separate stage builds T_0 after training C
        if self.reads not in READS:
            raise ValueError(f"separation.tracer.reads={self.reads!r}; known: {READS}")
        if self.output_norm not in OUTPUT_NORMS:
            raise ValueError(f"separation.tracer.output_norm={self.output_norm!r}; known: "
                             f"{OUTPUT_NORMS}")


def build_backbone(model: ModelSpec, inp: InputSpec) -> nn.Module:
    """C's network as ``model`` describes it, on normalised images: logits [n, K]."""
    c, h, _ = inp.shape
    if model.target is None:
        return backbone(model.arch, inp.num_classes, c, model.resize or h, **model.kwargs)
    return build_target(model.target, model.kwargs, inp.num_classes, c)


def build_base(model: ModelSpec, inp: InputSpec, net: nn.Module | None = None) -> nn.Sequential:
    """C on [0, 1] images: the data set's normalisation, then ``net`` (a fresh
    :func:`build_backbone` when None), behind a resize when ``model.resize`` asks for one."""
    base = nn.Sequential(Normalize(inp.mean, inp.std),
                         build_backbone(model, inp) if net is None else net)
    return base if model.resize is None else nn.Sequential(Resize(model.resize), base)


def build_copies(base: nn.Module, tracer: nn.Module, keys: torch.Tensor, alpha: float,
                 spec: TracerSpec, classifiers: nn.ModuleList | None = None,
                 unsold: torch.Tensor | None = None,
                 common: torch.Tensor | None = None) -> TracerCopies:
    """The copies of C keyed by ``keys``: permutations [m, K] (the paper's scheme) or
    projections [m, K, d] of the residual tracer's R(x) (ours, for more than K(K-1) copies);
    with ``classifiers``, copy i's classifier is its own C_i; ``unsold`` [M, K, d]: projection
    keys sold to nobody, for the key test, and ``common`` [d, k]: the directions tracing removes
    from the residual (both with projections only)."""
    norm = OutputNorm(spec.output_norm, spec.temperature)
    if keys.ndim == 3:
        return ProjectedCopies(base, tracer, keys, alpha, norm, classifiers, unsold, common)
    if unsold is not None or common is not None:
        raise ValueError("unsold keys and common directions go with projection keys; these "
                         "copies are keyed by permutations")
    return PermutedCopies(base, tracer, keys, alpha, norm, classifiers)
