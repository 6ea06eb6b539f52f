"""The paper's counter-measure to collusion: every copy gets its own classifier C_i, fine-tuned
from C so that the copies' input gradients point in different directions (paper.md, Table 6:
"copies with their own classifiers C_i trained with a gradient-orthogonal loss").

The loss of one batch is the copies' mean cross-entropy plus ``weight`` times the mean over
pairs of copies and images of cos^2 between the two copies' input gradients of their
cross-entropy. Colluders need an example that fools both of their copies; when the copies'
boundaries face different ways near an image, that example has to move along both normals, and
each copy's tracer sees its own share of the perturbation.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tracer.separation.train import BatchShare, ClassifierTraining, fit


def input_gradients(classifiers: nn.ModuleList, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Each classifier's gradient of its cross-entropy with respect to the input, kept in the
    graph (the loss below is differentiated through it), and the classifiers' mean
    cross-entropy from the same forward passes. Shape: -> ([m, n, d], scalar)."""
    x = x.detach().requires_grad_(True)
    grads, losses = [], []
    for c in classifiers:
        loss = F.cross_entropy(c(x), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x, create_graph=True)
        grads.append(g.flatten(1))
        losses.append(loss / len(x))
    return torch.stack(grads), torch.stack(losses).mean()


def gradient_orthogonality_loss(grads: Tensor) -> Tensor:
    """Mean over pairs i < j of copies and over images of cos^2(g_i, g_j); 0 for one copy.

    Shape: grads [m, n, d] -> scalar.
    """
    m = grads.shape[0]
    if m < 2:
        return grads.sum() * 0.0
    unit = grads / grads.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = torch.einsum("ind,jnd->ijn", unit, unit)
    i, j = torch.triu_indices(m, m, offset=1)
    return cos[i, j].pow(2).mean()


def train_orthogonal_classifiers(classifiers: nn.ModuleList, x: Tensor, y: Tensor,
                                 spec: ClassifierTraining, weight: float = 1.0, *, seed: int = 0,
                                 device: torch.device | str = "cpu",
                                 checkpoint: Path | None = None,
                                 progress: bool = True) -> list[dict]:
    """Fine-tune ``classifiers`` (the copies' C_i, each starting as C) together on (x, y) with
    cross-entropy + ``weight`` * gradient orthogonality; one history row per epoch."""
    _break_symmetry(classifiers, seed)

    def step(xb: Tensor, yb: Tensor, gen: torch.Generator, share: BatchShare):
        grads, ce = input_gradients(classifiers, xb, yb)
        orth = gradient_orthogonality_loss(grads)
        return ce + weight * orth, {"ce": ce.item(), "cos2": orth.item()}

    return fit(classifiers, x, y, step, epochs=spec.epochs, batch_size=spec.batch_size,
               lr=spec.lr, weight_decay=spec.weight_decay, seed=seed, device=device,
               checkpoint=checkpoint, desc="classifiers C_i (gradient-orthogonal)",
               progress=progress)


@torch.no_grad()
def _break_symmetry(classifiers: nn.ModuleList, seed: int, scale: float = 1e-2) -> None:
    """Copies that start as the same C, fed the same batches, sit where the loss is stationary:
    cos^2 = 1 is its maximum, where its gradient vanishes, so they would stay identical but for
    float rounding. Adds seeded noise of ``scale`` times each parameter's RMS to every copy (the
    same on every torchrun process)."""
    gen = torch.Generator().manual_seed(seed)
    for c in classifiers:
        for p in c.parameters():
            rms = p.pow(2).mean().sqrt()
            p.add_(torch.randn(p.shape, generator=gen).to(p.device, p.dtype) * scale * rms)
