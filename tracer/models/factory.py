"""Plain constructor arguments for every module of a copy family.

A run's manifest stores an :class:`InputSpec`, a :class:`ModelSpec` (C) and a :class:`TracerSpec`
(T_0 and how copies mix it in) as JSON; rebuilding from them needs no pickle and no Hydra, so
checkpoints stay loadable with ``weights_only=True``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tracer.models.backbones import build_classifier
from tracer.models.copies import CopyFamily, OutputNorm, PermutedCopyFamily, ProjectedCopyFamily
from tracer.models.residual import ResidualTracer
from tracer.models.vae import VAETracer

TRACER_KINDS = ("vae", "residual")


@dataclass
class InputSpec:
    """What the data set fixes: image shape [C, H, W], K classes, per-channel mean and std."""
    shape: list[int]
    num_classes: int
    mean: list[float]
    std: list[float]


@dataclass
class ModelSpec:
    """The classifier C: a backbone name and its keyword arguments."""
    arch: str = "small_cnn"
    kwargs: dict = field(default_factory=dict)


@dataclass
class TracerSpec:
    """The base tracer T_0 and how the copies mix it with C.

    kind: ``vae`` (the paper: a VAE's encoder) or ``residual`` (ours: a projected noise residual).
    output_norm/temperature: how C's logits are mapped to [0, 1] before alpha * T_i is added.
    """
    kind: str = "residual"
    width: int = 16
    depth: int = 5          # residual: conv layers of the noise predictor
    gain: float = 10.0      # residual: T_0 = tanh(gain * P R(x))
    output_norm: str = "minmax"
    temperature: float = 1.0

    def __post_init__(self):
        if self.kind not in TRACER_KINDS:
            raise ValueError(f"unknown tracer kind {self.kind!r}; known: {TRACER_KINDS}")


def build_base(model: ModelSpec, inp: InputSpec) -> nn.Module:
    c, h, _ = inp.shape
    return build_classifier(model.arch, inp.num_classes, c, h, inp.mean, inp.std, **model.kwargs)


def build_tracer(spec: TracerSpec, inp: InputSpec, seed: int = 0) -> VAETracer | ResidualTracer:
    """The module trained in the separation stage; its ``base_tracer`` is T_0."""
    c, h, _ = inp.shape
    if spec.kind == "vae":
        return VAETracer(inp.num_classes, c, h, inp.mean, inp.std, width=spec.width)
    return ResidualTracer(inp.num_classes, c, h, width=spec.width, depth=spec.depth,
                          gain=spec.gain, seed=seed)


def build_family(base: nn.Module, tracer: nn.Module, keys: torch.Tensor, alpha: float,
                 spec: TracerSpec, classifiers: nn.ModuleList | None = None) -> CopyFamily:
    """The copies of C keyed by ``keys``: permutations [m, K] (the paper's scheme) or
    projections [m, K, d] of the residual tracer's R(x) (ours, for more than K(K-1) copies);
    with ``classifiers``, copy i's classifier is its own C_i."""
    norm = OutputNorm(spec.output_norm, spec.temperature)
    cls = ProjectedCopyFamily if keys.ndim == 3 else PermutedCopyFamily
    return cls(base, tracer, keys, alpha, norm, classifiers)
