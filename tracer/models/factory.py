"""Plain constructor arguments for every module of a set of copies.

A run's manifest stores an :class:`InputSpec`, a :class:`ModelSpec` (C) and a :class:`TracerSpec`
(T_0 and how copies mix it in) as JSON; rebuilding from them needs no pickle and no Hydra, so
checkpoints stay loadable with ``weights_only=True``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tracer.models.backbones import build_classifier
from tracer.models.copies import OutputNorm, PermutedCopies, ProjectedCopies, TracerCopies


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
    kwargs: dict = field(default_factory=lambda: {"width": 16, "hidden": 128})


@dataclass
class TracerSpec:
    """The base tracer T_0 (which one: the separation method) and how the copies mix it with C.

    output_norm/temperature: how C's logits are mapped to [0, 1] before alpha * T_i is added.
    """
    width: int = 16         # channels of the residual tracer's R (the VAE's encoder, decoder)
    depth: int = 5          # residual: conv layers of the noise predictor
    gain: float = 20.0      # residual: T_0 = tanh(gain * P R(x))
    output_norm: str = "minmax"
    temperature: float = 1.0


def build_base(model: ModelSpec, inp: InputSpec) -> nn.Module:
    c, h, _ = inp.shape
    return build_classifier(model.arch, inp.num_classes, c, h, inp.mean, inp.std, **model.kwargs)


def build_copies(base: nn.Module, tracer: nn.Module, keys: torch.Tensor, alpha: float,
                 spec: TracerSpec, classifiers: nn.ModuleList | None = None) -> TracerCopies:
    """The copies of C keyed by ``keys``: permutations [m, K] (the paper's scheme) or
    projections [m, K, d] of the residual tracer's R(x) (ours, for more than K(K-1) copies);
    with ``classifiers``, copy i's classifier is its own C_i."""
    norm = OutputNorm(spec.output_norm, spec.temperature)
    cls = ProjectedCopies if keys.ndim == 3 else PermutedCopies
    return cls(base, tracer, keys, alpha, norm, classifiers)
