"""Loss terms of the separation stage.

The paper's VAE tracer (paper.md, "Training T_0"): ``L = lam * (MSE(V(X), X) + KL) + L_trap`` with
the noise-sensitive term ``L_trap = | cos(T_0(x), T_0(x + xi)) - cos(theta) |`` (abs or squared).
Our residual tracer (docs/method.md): its noise predictor learns ``noise_prediction_loss``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tracer.models.common_directions import attack_like_perturbations, square_mosaic

TRAP_FORMS = ("abs", "square")
NOISE_KINDS = ("gaussian", "uniform", "mixture", "attack_like")


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


def draw_noise(shape: tuple[int, ...], kind: str, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> Tensor:
    """Unit-scale noise xi: standard Gaussian, or uniform in [-1, 1], per entry; or
    :func:`mixed_noise` or :func:`attack_like_noise`."""
    if kind == "gaussian":
        return torch.randn(shape, generator=generator, device=device)
    if kind == "uniform":
        return torch.rand(shape, generator=generator, device=device) * 2 - 1
    if kind == "mixture":
        return mixed_noise(shape, generator, device)
    if kind == "attack_like":
        return attack_like_noise(shape, generator, device)
    raise ValueError(f"unknown noise kind {kind!r}; known: {NOISE_KINDS}")


# The laws of mixed_noise, as (kind, tile size), drawn with these weights: white noise for
# minimal attacks (HopSkipJump, Boundary, PGD's steps), the others for those that move in smooth
# or blocky patterns, which R trained on white noise reads as the image's own structure.
MIXED_LAWS = (("white", 1), ("smooth", 2), ("smooth", 4), ("tiles", 2), ("tiles", 4))
MIXED_WEIGHTS = (0.5, 0.125, 0.125, 0.125, 0.125)


def mixed_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> Tensor:
    """Per image, one law of ``MIXED_LAWS``: white Gaussian; Gaussian drawn at 1/2 or 1/4 of the
    resolution and upsampled bilinearly (SimBA-DCT's low-frequency bands, QEBA's coarse grid);
    or random signs constant on 2x2 or 4x4 tiles (Square's patches, Bandits' tiles). Every
    image's noise has unit mean square, as the Gaussian's has in expectation. Shape [n, C, H, W]."""
    n, _, h, w = shape
    law = torch.multinomial(torch.tensor(MIXED_WEIGHTS, device=device), n, replacement=True,
                            generator=generator)
    out = torch.empty(shape, device=device)
    for i, (kind, tile) in enumerate(MIXED_LAWS):
        rows = (law == i).nonzero().flatten()
        if not len(rows):
            continue
        low = (len(rows), shape[1], -(-h // tile), -(-w // tile))
        z = torch.randn(low, generator=generator, device=device)
        if kind == "tiles":
            z = F.interpolate(z.sign(), scale_factor=tile, mode="nearest")[..., :h, :w]
        elif tile > 1:
            z = F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
        out[rows] = z / z.pow(2).flatten(1).mean(1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1)
    return out


def attack_like_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> Tensor:
    """Per image, white Gaussian noise (half of the images) or one of the laws attacks draw from
    at +-1 (the other half, each law as likely): the attack-like laws of
    ``tracer.models.common_directions`` (vertical stripes, per-pixel signs, coarse blocks) and
    Square's mosaic of stripes and squares of every side its schedule passes through. Every
    image's noise has unit mean square, as the Gaussian's has in expectation. Shape [n, C, H, W].
    """
    g = generator if generator is not None else torch.default_generator
    n = shape[0]
    laws = [*attack_like_perturbations(shape, g, 1.0).values(), square_mosaic(shape, g, 1.0)]
    pick = torch.randint(len(laws), (n,), generator=g)
    out = torch.stack(laws)[pick, torch.arange(n)].to(device)
    white = (torch.rand(n, generator=g) < 0.5).to(device)
    return torch.where(white.view(-1, 1, 1, 1), torch.randn(shape, generator=g).to(device), out)


def noise_prediction_loss(predicted: Tensor, noise: Tensor) -> Tensor:
    """Squared error of the predicted noise, summed over pixels and averaged over the batch.

    Shape: predicted, noise [n, C, H, W].
    """
    return (predicted - noise).pow(2).flatten(1).sum(1).mean()


def random_noise_levels(n: int, scale: float, clean_fraction: float,
                        generator: torch.Generator | None = None,
                        floor: float | None = None) -> Tensor:
    """Per-image noise std, with ``clean_fraction`` of the images at 0 so the predictor also
    learns to answer 0 on clean images: uniform in [0, scale], or with ``floor``, log-uniform in
    [floor, scale] (as many images per octave of std: a predictor trained on the uniform law
    rarely sees noise much below scale and answers a faint perturbation as the image's own
    structure, docs/method.md section 7). Shape: [n, 1, 1, 1]."""
    u = torch.rand(n, generator=generator)
    if floor is None:
        sigma = u * scale
    elif 0 < floor < scale:
        sigma = torch.exp(math.log(floor) + u * (math.log(scale) - math.log(floor)))
    else:
        raise ValueError(f"noise floor must lie in (0, noise scale {scale}), got {floor}")
    sigma[torch.rand(n, generator=generator) < clean_fraction] = 0.0
    return sigma.view(n, 1, 1, 1)
