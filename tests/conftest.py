"""Shared fixtures: a tiny untrained copy family on 8x8 images, and the digits data set."""
from __future__ import annotations

import pytest
import torch

from tracer.data import load_dataset
from tracer.models import InputSpec, ModelSpec, TracerSpec, build_base, build_family, build_tracer
from tracer.separation import make_permutations

torch.set_num_threads(2)


def tiny_family(num_copies: int = 3, kind: str = "residual", alpha: float = 0.15, seed: int = 0):
    torch.manual_seed(seed)
    inp = InputSpec([1, 8, 8], 10, [0.3], [0.3])
    base = build_base(ModelSpec("small_cnn", {"width": 4, "hidden": 16}), inp)
    spec = TracerSpec(kind=kind, width=4, depth=3)
    tracer = build_tracer(spec, inp, seed=seed)
    perms = make_permutations(10, num_copies, seed=seed)
    return build_family(base, tracer.base_tracer, perms, alpha, spec).eval()


@pytest.fixture
def family():
    return tiny_family()


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")
