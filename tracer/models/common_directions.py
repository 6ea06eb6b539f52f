"""Directions of the debiased residual that attacks leave whatever copy they target.

An attack family draws its perturbation from its own law: Square starts from vertical stripes,
PGD and FGSM take signs of a gradient, SimBA-DCT and Bandits move coarse blocks. Those laws put
part of every example's residual along the same few directions, whichever copy was attacked. A
copy whose key happens to lean along them reads a large spread on every such example and is
named where it is not the source: on one seed, one of the 1,004 keys that were not the source's
outscored all the others on 7 of Square's 200 examples (2 to 5 on other attacks), and 3 examples
named a wrong buyer at the threshold (docs/method.md section 8).
Tracing removes these directions from the residual before any key reads it, so a key reads only
what the attack did to its own copy.

The directions are the top right singular vectors of the unit-normalised debiased residuals
of training images under those laws, at the attacks' usual budget: found from the vendor's own
data at separation, before any attack is seen.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tracer.data import batches
from tracer.seeding import derived_seed

# Linf budget of the perturbation laws: that of the attack configs (configs/attack/*.yaml)
EPSILON = 0.1
# training images each law perturbs; 3 x 3,000 residuals fix 20 directions of 784 well
NUM_IMAGES = 3000
# side of the coarse blocks' grid (SimBA-DCT's and Bandits' low frequencies)
BLOCK_GRID = 4


def attack_like_perturbations(shape: tuple[int, ...], generator: torch.Generator,
                              epsilon: float = EPSILON) -> dict[str, Tensor]:
    """Random +-``epsilon`` perturbations [n, C, H, W] under each law: ``stripes`` (one sign per
    channel and column, Square's start), ``signs`` (one per pixel, a gradient's signs) and
    ``blocks`` (one per cell of a coarse grid)."""
    n, c, h, w = shape

    def signs(*size: int) -> Tensor:
        return epsilon * torch.sign(torch.randn(*size, generator=generator))

    blocks = F.interpolate(signs(n, c, BLOCK_GRID, BLOCK_GRID), size=(h, w), mode="nearest")
    return {"stripes": signs(n, c, 1, w).expand(n, c, h, w), "signs": signs(n, c, h, w),
            "blocks": blocks}


def square_windows(k: int, h: int, w: int, side: int, generator: torch.Generator,
                   device: torch.device | str = "cpu") -> Tensor:
    """A [k, 1, h, w] mask of one ``side`` x ``side`` square per image, each at its own uniform
    place inside the image (Square's window)."""
    top = torch.randint(0, h - side + 1, (k, 1, 1, 1), generator=generator, device=device)
    left = torch.randint(0, w - side + 1, (k, 1, 1, 1), generator=generator, device=device)
    rows = torch.arange(h, device=device).view(1, 1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, 1, w)
    return (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)


def square_mosaic(shape: tuple[int, ...], generator: torch.Generator,
                  epsilon: float = EPSILON, p_init: float = 0.8, halvings: int = 10) -> Tensor:
    """What Square's random search leaves: vertical stripes of +-``epsilon`` overwritten by one
    square of +-``epsilon`` (a sign per channel) of each side its schedule passes through, from
    ``p_init`` of the pixels down, halving the area ``halvings - 1`` times, each at a random
    place. Shape [n, C, H, W]."""
    n, c, h, w = shape

    def signs(*size: int) -> Tensor:
        return epsilon * torch.sign(torch.randn(*size, generator=generator))

    out = signs(n, c, 1, w).expand(n, c, h, w).clone()
    for j in range(halvings):
        side = min(max(round((p_init / 2 ** j * h * w) ** 0.5), 1), h - 1, w - 1)
        out = torch.where(square_windows(n, h, w, side, generator), signs(n, c, 1, 1), out)
    return out


@torch.no_grad()
def common_directions(tracer: nn.Module, images: Tensor, num: int, *, seed: int = 0,
                      batch_size: int = 500) -> Tensor:
    """The ``num`` directions the attack-like laws share across ``images`` [n, C, H, W]: an
    orthonormal basis [d, num] of the top singular subspace of their debiased residuals
    (``tracer.debiased_residual``), each scaled to unit norm."""
    d = images[0].numel()
    if not 0 < num < d:
        raise ValueError(f"common directions must number 1 to {d - 1}, got {num}")
    g = torch.Generator().manual_seed(seed)
    device = next(tracer.parameters()).device
    rows = []
    for perturbation in attack_like_perturbations(tuple(images.shape), g).values():
        for idx in batches(len(images), batch_size):
            x = (images[idx] + perturbation[idx]).clamp(0.0, 1.0).to(device)
            r = tracer.debiased_residual(x)
            rows.append((r / r.norm(dim=1, keepdim=True).clamp_min(1e-12)).cpu())
    residuals = torch.cat(rows)
    if len(residuals) < num:
        raise ValueError(f"{num} common directions need at least {num} residuals, got "
                         f"{len(residuals)}")
    return torch.linalg.svd(residuals, full_matrices=False).Vh[:num].T.contiguous()


def run_common_directions(tracer: nn.Module, x_train: Tensor, share: float,
                          run_seed: int) -> Tensor | None:
    """What a run's separation removes: ``share`` of the residual's d dimensions, found on its
    first ``NUM_IMAGES`` training images with a seed derived from the run's; None where the
    share rounds to no direction."""
    num = round(share * x_train[0].numel())
    if not num:
        return None
    return common_directions(tracer, x_train[:NUM_IMAGES], num,
                             seed=derived_seed(run_seed, "common_directions"))


def without(directions: Tensor | None, residual: Tensor) -> Tensor:
    """``residual`` [n, d] with its part along the orthonormal ``directions`` [d, k] removed
    (None: unchanged)."""
    if directions is None:
        return residual
    return residual - (residual @ directions) @ directions.T
