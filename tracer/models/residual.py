"""Our base tracer: a random projection of the noise a denoiser finds in the input (docs/method.md).

``T_0(x) = tanh(gain * P R(x))``: R is a small fully-convolutional network trained to predict the
noise added to an image (DnCNN-style residual learning), P a fixed random K x d projection with
unit rows. On a natural image R(x) is close to 0, so T_0 is quiet and every copy keeps C's
decisions; a perturbation off the image manifold comes out of R almost unchanged, so T_0 answers
it strongly, in a direction set by P. An attack on copy i is thus drawn into pi_i(T_0)'s pair of
outputs, while the other copies' pairs, nearly orthogonal rows of P, stay quiet.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class NoisePredictor(nn.Module):
    """R: image [n, C, H, W] -> predicted additive noise, same shape."""

    def __init__(self, channels: int, width: int, depth: int):
        super().__init__()
        if depth < 2:
            raise ValueError("the noise predictor needs depth >= 2")
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


READS = ("residual", "debiased")   # what the keys read: R(x), or R(x) - R(x - R(x))


def keyed_input(noise: nn.Module, x: Tensor, reads: str) -> tuple[Tensor, Tensor]:
    """What a key reads of x, and R(x): both [n, d]. ``residual``: R(x) itself. ``debiased``:
    R(x) - R(D(x)), with D(x) = x - R(x) clipped to [0, 1] the denoised image; R finds an
    image's own edges again on D(x), so they cancel, while what an attack added, which D removes,
    stays (docs/method.md section 14: 3-4 times quieter on clean images, as loud on attacks)."""
    r = noise(x)
    return (r if reads == "residual" else debiased(noise, x, r)).flatten(1), r.flatten(1)


def debiased(noise: nn.Module, x: Tensor, r: Tensor) -> Tensor:
    """R(x) - R(D(x)) [n, C, H, W] from ``r`` = R(x) [n, C, H, W]."""
    return r - noise((x - r).clamp(0.0, 1.0))


class ResidualTracer(nn.Module):
    """T_0(x) = tanh(gain * P F(x)), F(x) = R(x) or its debiased form (``reads``); outputs
    [n, K] in [-1, 1]."""

    scorers = ("debiased_disagree", "dol", "logit_dol_label")   # tracing's rules; first: default

    def __init__(self, num_outputs: int, in_channels: int, image_size: int, *, width: int,
                 depth: int, gain: float, seed: int = 0, reads: str = "residual"):
        super().__init__()
        if reads not in READS:
            raise ValueError(f"unknown tracer input {reads!r}; known: {READS}")
        self.reads = reads
        self.noise = NoisePredictor(in_channels, width, depth)
        d = in_channels * image_size * image_size
        p = torch.randn(num_outputs, d, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("projection", p / p.norm(dim=1, keepdim=True))
        self.gain = float(gain)

    @property
    def base_tracer(self) -> nn.Module:
        return self

    def features(self, x: Tensor, debiased: bool = False) -> tuple[Tensor, Tensor | None]:
        """What the copies' keys read (``reads``) [n, d], and with ``debiased`` the debiased
        residual R(x) - R(D(x)) [n, d] (else None), from one pass of R over x."""
        read, r = keyed_input(self.noise, x, self.reads)
        if not debiased:
            return read, None
        return read, read if self.reads == "debiased" else self.debiased_residual(x, r)

    def readout(self, features: Tensor) -> Tensor:
        """P r: residuals [n, d] -> [n, K], before the gain."""
        return features @ self.projection.T

    def pre_activation(self, x: Tensor) -> Tensor:
        """gain * P R(x), before tanh (what the logit scorers read: tanh saturates)."""
        return self.gain * self.readout(self.features(x)[0])

    def debiased_residual(self, x: Tensor, r: Tensor | None = None) -> Tensor:
        """R(x) - R(D(x)), with D(x) = x - R(x) clipped to [0, 1] the denoised image; [n, d].

        R answers an image's own edges and textures too (|R| about 0.13 on clean test images,
        against 0.3 for an HSJA example): that part returns on D(x) and cancels, while what an
        attack or noise added, which D removes, stays. Tracing reads it (the spread, the
        alignment of ``debiased_disagree``); the copies' outputs read it where ``reads`` is
        ``debiased``. ``r``: R(x) [n, C, H, W], if already computed."""
        return debiased(self.noise, x, self.noise(x) if r is None else r.view_as(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.pre_activation(x))
