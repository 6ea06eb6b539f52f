"""Plain constructor arguments for every module of a copy family.

A run's manifest stores a :class:`ModelSpec` and an :class:`InputSpec` as JSON; rebuilding from
them needs no pickle and no Hydra, so checkpoints stay loadable with ``weights_only=True``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tracer.models.backbones import build_classifier
from tracer.models.copies import CopyFamily, OutputNorm
from tracer.models.vae import VAETracer


@dataclass
class InputSpec:
    """What the data set fixes: image shape [C, H, W], K classes, per-channel mean and std."""
    shape: list[int]
    num_classes: int
    mean: list[float]
    std: list[float]


@dataclass
class ModelSpec:
    """What the user chooses: C's architecture, T_0's width, and how C's output is normalised."""
    arch: str = "small_cnn"
    kwargs: dict = field(default_factory=dict)
    tracer_width: int = 32
    output_norm: str = "softmax"
    temperature: float = 1.0


def build_base(model: ModelSpec, inp: InputSpec) -> nn.Module:
    c, h, _ = inp.shape
    return build_classifier(model.arch, inp.num_classes, c, h, inp.mean, inp.std, **model.kwargs)


def build_vae(model: ModelSpec, inp: InputSpec) -> VAETracer:
    c, h, _ = inp.shape
    return VAETracer(inp.num_classes, c, h, inp.mean, inp.std, width=model.tracer_width)


def build_family(base: nn.Module, tracer: nn.Module, permutations: torch.Tensor, alpha: float,
                 model: ModelSpec) -> CopyFamily:
    return CopyFamily(base, tracer, permutations, alpha, OutputNorm(model.output_norm,
                                                                    model.temperature))
