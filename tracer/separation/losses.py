"""Loss terms of the separation stage (paper.md, "Training T_0").

``L = lam * (MSE(V(X), X) + KL) + L_trap`` with the noise-sensitive term
``L_trap = | cos(T_0(x), T_0(x + xi)) - cos(theta) |`` (abs, or squared: docs/method.md).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

TRAP_FORMS = ("abs", "square")
NOISE_KINDS = ("gaussian", "uniform")


def noise_sensitive_loss(t_clean: Tensor, t_noisy: Tensor, theta_deg: float = 75.0,
                         form: str = "abs") -> Tensor:
    """L_trap: small random noise must turn the tracer's output by the angle theta.

    Shape: t_clean, t_noisy [n, K]; returns a scalar (mean over the batch).
    """
    if form not in TRAP_FORMS:
        raise ValueError(f"unknown L_trap form {form!r}; known: {TRAP_FORMS}")
    cos = F.cosine_similarity(t_clean, t_noisy, dim=-1, eps=1e-8)
    gap = cos - math.cos(math.radians(theta_deg))
    return gap.abs().mean() if form == "abs" else gap.pow(2).mean()


def vae_loss(recon: Tensor, x: Tensor, mu: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """(reconstruction MSE, KL(N(mu, sigma^2) || N(0, 1))), each averaged over the batch."""
    mse = F.mse_loss(recon, x)
    kl = -0.5 * (1 + 2 * sigma.log() - mu.pow(2) - sigma.pow(2)).sum(dim=1).mean()
    return mse, kl


def add_noise(x: Tensor, kind: str, scale: float, generator: torch.Generator | None = None) -> Tensor:
    """The noisy twin x + xi, clipped to [0, 1]: Gaussian with std ``scale`` or uniform in
    [-scale, scale] per pixel."""
    if kind == "gaussian":
        xi = torch.randn(x.shape, generator=generator, device=x.device) * scale
    elif kind == "uniform":
        xi = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * scale
    else:
        raise ValueError(f"unknown noise kind {kind!r}; known: {NOISE_KINDS}")
    return (x + xi).clamp_(0.0, 1.0)
