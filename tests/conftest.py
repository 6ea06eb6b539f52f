"""Shared fixtures: a tiny untrained copy copies on 8x8 images, a linear classifier whose minimal
adversarial perturbations are analytic, and the digits data set."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tracer.data import ImageData, load_dataset
from tracer.models import (InputSpec, ModelSpec, ResidualTracer, TracerSpec, VAETracer, build_base,
                           build_copies, random_projections)
from tracer.separation import (ClassifierTraining, SeparationSpec, TracerTraining,
                               make_permutations)

torch.set_num_threads(2)


def tiny_copies(num_copies: int = 3, method: str = "residual", alpha: float = 0.15,
                seed: int = 0, keying: str = "permutation", unsold: int = 0,
                reads: str = "residual"):
    """Untrained tracer copies on 8x8 images: the residual tracer (reading ``reads``), or the
    paper's VAE one; ``unsold`` projection keys for the key test."""
    torch.manual_seed(seed)
    inp = InputSpec([1, 8, 8], 10, [0.3], [0.3])
    base = build_base(ModelSpec("small_cnn", {"width": 4, "hidden": 16}), inp)
    spec = TracerSpec(width=4, depth=3, gain=10.0)   # quieter than fashion_mnist's 20: 8x8 images
    tracer = ResidualTracer(10, 1, 8, width=4, depth=3, gain=spec.gain, seed=seed, reads=reads) \
        if method == "residual" else VAETracer(10, 1, 8, [0.3], [0.3], width=4).base_tracer
    keys = random_projections(num_copies, 10, 64, seed=seed) if keying == "projection" \
        else make_permutations(10, num_copies, seed=seed)
    spare = random_projections(unsold, 10, 64, seed=seed, purpose="unsold_key") if unsold \
        else None
    return build_copies(base, tracer, keys, alpha, spec, unsold=spare).eval()


@pytest.fixture
def copies():
    return tiny_copies()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished run of the tiny configuration for every end-to-end test that reads it (a
    test that changes it puts it back)."""
    import tracer
    return tracer.run(tracer.compose("debug=tiny"), tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


class Linear2(nn.Module):
    """Label 1 iff w . (x - c) > 0; distance of x to the boundary: |w . (x - c)| / |w|_2 in L2,
    |w . (x - c)| / |w|_1 in Linf (while the box [0, 1] is not in the way)."""

    def __init__(self, w: torch.Tensor, c: float = 0.5):
        super().__init__()
        self.w, self.c = w.flatten(), c

    def forward(self, x):
        s = (x.flatten(1) - self.c) @ self.w
        return torch.stack([torch.zeros_like(s), s], dim=1)


def linear_case(n: int = 6, seed: int = 0, smooth: bool = False):
    """A :class:`Linear2` on 1x8x8 images and ``n`` images of class 0 near the middle of the
    pixel range; returns (model, x, minimal L2 distance [n]). ``smooth`` draws w on a 2x2 grid,
    upsampled: a boundary normal of low spatial frequency, as natural images' tend to be."""
    g = torch.Generator().manual_seed(seed)
    if smooth:
        w = F.interpolate(torch.randn(1, 1, 2, 2, generator=g), size=(8, 8), mode="bilinear",
                          align_corners=False).flatten()
    else:
        w = torch.randn(64, generator=g)
    model = Linear2(w)
    x = 0.5 + 0.05 * torch.randn(n, 1, 8, 8, generator=g)
    s = (x.flatten(1) - 0.5) @ w
    # move each image to margin -0.2 on class 0's side (no clipping at the optimum)
    x = x - ((s.clamp_min(0) + 0.2) / w.norm() ** 2).view(-1, 1, 1, 1) * w.view(1, 1, 8, 8)
    dist = -((x.flatten(1) - 0.5) @ w) / w.norm()
    return model, x.clamp(0, 1), dist


def toy_data() -> ImageData:
    """64 random 8x8 images in 10 classes: enough for the separation stage to run, in a second."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=g)
    y = torch.arange(64) % 10
    return ImageData("toy", x[:48], y[:48], x[48:], y[48:], 10)


def toy_separation(method: str = "residual") -> SeparationSpec:
    """One-epoch training of tiny networks, 3 copies. C sees no random perturbations: on
    images of pure noise they only blur 48 examples, and one epoch of that leaves C constant
    (tests/unit/test_classifier_training.py tests them)."""
    return SeparationSpec(model=ModelSpec("small_cnn", {"width": 4, "hidden": 8}),
                          classifier=ClassifierTraining(epochs=1, batch_size=16, random_share=0.0,
                                                         adversarial_share=0.0),
                          tracer=TracerSpec(width=4, depth=3, gain=10.0),
                          tracer_training=TracerTraining(epochs=1, batch_size=16), num_copies=3,
                          method=method)


def strong_pgd_case(n: int, num_copies: int = 3):
    """Tiny copies (alpha 0.5), an Linf-PGD spec strong enough (eps 0.5) to fool them untrained,
    n random images and copy 0's labels for them: (copies, spec, x, y)."""
    import tracer
    from tracer.config import to_spec
    copies = tiny_copies(num_copies=num_copies, alpha=0.5)
    spec = to_spec(tracer.compose("attack=[pgd]", "attack.pgd.factory.eps=0.5",
                                  "attack.pgd.factory.eps_iter=0.05")).evidence.attacks[0]
    torch.manual_seed(0)
    x = torch.rand(n, 1, 8, 8)
    with torch.no_grad():
        y = copies.copy(0)(x).argmax(1)
    return copies, spec, x, y
