"""Training loops for the classifier C and the base tracer T_0 (paper.md, "Separation").

Both use :func:`fit`: plain epochs over in-memory tensors, Adam, a progress bar, and an atomic
per-epoch checkpoint, so an interrupted stage resumes from its last finished epoch. Under torchrun
each process trains on its share of every batch (tracer.distributed) and the result matches one
process's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tracer import distributed
from tracer.data import batches
from tracer.io import atomic_torch_save, load_weights
from tracer.models.common_directions import attack_like_perturbations
from tracer.progress import bar as progress_bar
from tracer.seeding import derived_seed
from tracer.separation.losses import (draw_noise, noise_prediction_loss, noise_sensitive_loss,
                                      random_noise_levels, vae_loss)


@dataclass
class ClassifierTraining:
    """How C is trained (cross-entropy on its logits).

    ``random_share`` of each batch is seen under a random attack-like perturbation of Linf size
    ``random_epsilon`` (stripes, signs or coarse blocks; ``random_perturbations``): a C that such
    a perturbation fools is fooled before an attack has asked its copy anything, and that
    evidence carries no trace of the copy (docs/method.md section 9).

    ``adversarial_share`` of each batch (drawn among the images left unperturbed) is seen as an
    FGSM example with a random start of Linf size ``adversarial_epsilon`` against C as it is
    (``fgsm_random_start``): a C that its own attacks do not cross within the budget leaves the
    copy's tracer as the way across (docs/method.md section 11). ``adversarial_grid`` g > 1
    makes that step constant on g x g tiles (the gradient's sign averaged over each tile): the
    perturbations that Square's windows, Bandits' tiles and QEBA's coarse grid search, which the
    tracer's white-noise keys barely see (docs/method.md section 17)."""
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    random_share: float = 0.25
    random_epsilon: float = 0.1
    adversarial_share: float = 0.25
    adversarial_epsilon: float = 0.1
    adversarial_grid: int = 1


@dataclass
class TracerTraining:
    """How T_0 is trained (defaults: the residual tracer's). The VAE tracer (paper):
    ``lam * (MSE + KL) + L_trap`` on (x, x + xi) pairs. The residual tracer (ours): noise
    prediction at std log-uniform in [noise_floor, noise_scale] (uniform from 0 without a
    floor)."""
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    noise: str = "gaussian"
    noise_scale: float = 0.05
    n_train: int | None = None  # train T_0 on a subset of the training images
    lam: float = 0.001          # vae: weight of the VAE terms (paper: 0.001)
    theta_deg: float = 75.0     # vae: the angle noise turns T_0's output by (paper: 75 degrees)
    trap_form: str = "abs"      # vae: |cos - cos(theta)| or its square
    clean_fraction: float = 0.5  # residual: share of training images left clean
    noise_floor: float | None = 0.002  # residual: log-uniform in [noise_floor, noise_scale];
                                       # None: std uniform in [0, noise_scale]


@dataclass
class BatchShare:
    """The rows ``rows`` of a batch of ``size`` that this process computes. A step draws its
    randomness for the whole batch and keeps these rows, so every process stays in step with the
    shared generator and sees the noise one process would."""
    rows: slice
    size: int

    def draw(self, sample: Callable[[int], Tensor]) -> Tensor:
        """``sample(size)`` (randomness for the whole batch), restricted to this share."""
        return sample(self.size)[self.rows]


Step = Callable[[Tensor, Tensor, torch.Generator, BatchShare], tuple[Tensor, dict[str, float]]]


def fit(model: nn.Module, x: Tensor, y: Tensor, step: Step, *, epochs: int, batch_size: int,
        lr: float, weight_decay: float = 0.0, seed: int = 0, device: torch.device | str = "cpu",
        checkpoint: Path | None = None, desc: str = "train", progress: bool = True) -> list[dict]:
    """Run ``epochs`` of Adam on ``step(xb, yb, gen, share) -> (loss, logs)``; returns one row
    per epoch.

    Batches are shuffled by a generator seeded from (seed, epoch), so a resumed run sees the same
    batches as an uninterrupted one. Under torchrun every process starts from rank 0's checkpoint,
    computes its share of each batch and sums gradients with the others; rank 0 alone writes.
    """
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict] = []
    start = 0
    found = checkpoint is not None and checkpoint.is_file() and distributed.is_main()
    state = distributed.broadcast_state(load_weights(checkpoint) if found else None)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, start = list(state["history"]), int(state["epoch"])
    for epoch in range(start, epochs):
        model.train()
        gen = torch.Generator().manual_seed(derived_seed(seed, f"epoch_{epoch}"))
        sums = torch.zeros(0)
        names: list[str] = []
        n_seen = 0.0
        bar = progress_bar(list(batches(len(x), batch_size, gen)),
                           desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for idx in bar:
            rows, weight = distributed.batch_share(len(idx))
            mine = idx[rows]
            loss, logs = step(x[mine].to(device), y[mine].to(device), gen,
                              BatchShare(rows, len(idx)))
            opt.zero_grad(set_to_none=True)
            (loss * weight).backward()
            distributed.sum_gradients(model)
            opt.step()
            names = list(logs)
            sums = (sums if len(sums) else torch.zeros(len(names) + 1, dtype=torch.float64)) + \
                torch.tensor([*(v * len(idx) * weight for v in logs.values()), len(idx) * weight],
                             dtype=torch.float64)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        sums = distributed.sum_tensor(sums)
        n_seen = float(sums[-1])
        history.append({"epoch": epoch + 1, **{k: float(v) / n_seen
                                               for k, v in zip(names, sums[:-1])}})
        if checkpoint is not None and distributed.is_main():
            atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "epoch": epoch + 1, "history": history}, checkpoint)
    model.eval()
    return history


def train_classifier(model: nn.Module, x: Tensor, y: Tensor, spec: ClassifierTraining, *,
                     seed: int = 0, device: torch.device | str = "cpu",
                     checkpoint: Path | None = None, progress: bool = True) -> list[dict]:
    """Train C with cross-entropy. Shape: x [N, C, H, W] in [0, 1]; y [N]."""
    if not 0 <= spec.random_share <= 1 or spec.random_epsilon < 0:
        raise ValueError(f"random_share must be in [0, 1] and random_epsilon >= 0, got "
                         f"{spec.random_share} and {spec.random_epsilon}")
    if not (0 <= spec.adversarial_share and spec.random_share + spec.adversarial_share <= 1 + 1e-9
            and spec.adversarial_epsilon >= 0):
        raise ValueError(f"adversarial_share must be in [0, 1 - random_share] and "
                         f"adversarial_epsilon >= 0, got {spec.adversarial_share} and "
                         f"{spec.adversarial_epsilon}")

    if spec.adversarial_grid < 1:
        raise ValueError(f"adversarial_grid must be >= 1, got {spec.adversarial_grid}")

    def step(xb: Tensor, yb: Tensor, gen: torch.Generator, share: BatchShare):
        untouched = torch.ones(len(xb), dtype=torch.bool)
        if spec.random_share:
            delta, on = random_laws((share.size, *xb.shape[1:]), spec.random_share,
                                    spec.random_epsilon, gen)
            delta, untouched = delta[share.rows], ~on[share.rows]
            xb = (xb + delta.to(xb.device)).clamp(0.0, 1.0)
        if spec.adversarial_share:
            # among the rows the random laws left alone, so that the shares add up
            pick = share.draw(lambda n: torch.rand(n, generator=gen)) * (1 - spec.random_share)
            rows = (untouched & (pick < spec.adversarial_share)).nonzero().flatten()
            start = share.draw(lambda n: torch.rand(n, *xb.shape[1:], generator=gen))[rows]
            if len(rows):
                xb = xb.clone()
                xb[rows] = fgsm_random_start(model, xb[rows], yb[rows], spec.adversarial_epsilon,
                                             start.to(xb.device), spec.adversarial_grid)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        acc = (logits.argmax(1) == yb).float().mean().item()
        return loss, {"ce": loss.item(), "train_acc": acc}

    return fit(model, x, y, step, epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
               weight_decay=spec.weight_decay, seed=seed, device=device, checkpoint=checkpoint,
               desc="classifier C", progress=progress)


def fgsm_random_start(model: nn.Module, x: Tensor, y: Tensor, epsilon: float,
                      start: Tensor, grid: int = 1) -> Tensor:
    """One FGSM step of 1.25 ``epsilon`` from a uniform random start in the Linf ball, projected
    back onto it (Wong, Rice and Kolter, "Fast is better than free", ICLR 2020). ``start``:
    uniform draws in [0, 1) like x. The gradient is taken in eval mode, so that the extra pass
    moves no batch-norm statistics. ``grid`` > 1: the step's sign is that of the gradient summed
    over each ``grid`` x ``grid`` tile (edge tiles cut short), one value a tile, and the random
    start is drawn a tile at a time too. Shape: x [n, C, H, W] in [0, 1]; y [n] -> like x."""
    was_training = model.training
    begin = (x + (2 * _tiled(start, grid, mean=False) - 1) * epsilon).clamp(0.0, 1.0) \
        .requires_grad_(True)
    try:
        model.eval()
        grad, = torch.autograd.grad(F.cross_entropy(model(begin), y), begin)
    finally:
        model.train(was_training)
    step = (begin.detach() - x + 1.25 * epsilon * _tiled(grad, grid).sign()).clamp(
        -epsilon, epsilon)
    return (x + step).clamp(0.0, 1.0)


def _tiled(t: Tensor, grid: int, mean: bool = True) -> Tensor:
    """``t`` [n, C, H, W] made constant on each ``grid`` x ``grid`` tile: its mean over the tile,
    or (``mean`` False) its value at the tile's first pixel."""
    if grid == 1:
        return t
    h, w = t.shape[-2:]
    coarse = F.avg_pool2d(t, grid, ceil_mode=True) if mean else t[..., ::grid, ::grid]
    return F.interpolate(coarse, scale_factor=grid, mode="nearest")[..., :h, :w]


def random_perturbations(shape: tuple[int, ...], share: float, epsilon: float,
                         generator: torch.Generator) -> Tensor:
    """Per image, with chance ``share``, one of the attack-like laws at +-``epsilon``
    (``tracer.models.common_directions.attack_like_perturbations``, each as likely); 0 for the
    others. Shape [n, C, H, W]."""
    return random_laws(shape, share, epsilon, generator)[0]


def random_laws(shape: tuple[int, ...], share: float, epsilon: float,
                generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``random_perturbations``' perturbations [n, C, H, W] and which images drew one [n]."""
    laws = torch.stack(list(attack_like_perturbations(shape, generator, epsilon).values()))
    n = shape[0]
    pick = torch.randint(len(laws), (n,), generator=generator)
    on = torch.rand(n, generator=generator) < share
    return laws[pick, torch.arange(n)] * on.view(-1, *([1] * (len(shape) - 1))), on


def train_vae_tracer(vae: nn.Module, x: Tensor, spec: TracerTraining, *, seed: int = 0,
                     device: torch.device | str = "cpu", checkpoint: Path | None = None,
                     progress: bool = True) -> list[dict]:
    """Train the VAE whose encoder is T_0 (paper.md): each batch and its noisy twin go through
    the VAE together; the loss is ``lam * (MSE + KL) + L_trap``."""
    x, labels = _tracer_subset(x, spec)

    def step(xb: Tensor, _: Tensor, gen: torch.Generator, share: BatchShare):
        xi = share.draw(lambda n: draw_noise((n, *xb.shape[1:]), spec.noise,
                                             _device_gen(gen, xb), xb.device))
        xn = (xb + spec.noise_scale * xi).clamp(0.0, 1.0)
        recon, mu, sigma, t = vae(torch.cat([xb, xn]))
        mse, kl = vae_loss(recon, torch.cat([xb, xn]), mu, sigma)
        n = len(xb)
        trap = noise_sensitive_loss(t[:n], t[n:], spec.theta_deg, spec.trap_form)
        loss = spec.lam * (mse + kl) + trap
        cos = F.cosine_similarity(t[:n], t[n:], dim=-1).mean().item()
        return loss, {"mse": mse.item(), "kl": kl.item(), "trap": trap.item(), "cos": cos}

    return fit(vae, x, labels, step, epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
               seed=seed, device=device, checkpoint=checkpoint, desc="tracer T_0",
               progress=progress)


def train_residual_tracer(tracer: nn.Module, x: Tensor, spec: TracerTraining, *, seed: int = 0,
                          device: torch.device | str = "cpu", checkpoint: Path | None = None,
                          progress: bool = True) -> list[dict]:
    """Train the residual tracer's noise predictor R to return the noise added to an image
    (0 for the clean share); the projection P is fixed at construction."""
    x, labels = _tracer_subset(x, spec)

    def step(xb: Tensor, _: Tensor, gen: torch.Generator, share: BatchShare):
        sigma = share.draw(lambda n: random_noise_levels(n, spec.noise_scale,
                                                         spec.clean_fraction, gen,
                                                         spec.noise_floor))
        xi = share.draw(lambda n: draw_noise((n, *xb.shape[1:]), spec.noise,
                                             _device_gen(gen, xb), xb.device))
        noisy = (xb + sigma.to(xb.device) * xi).clamp(0.0, 1.0)
        loss = noise_prediction_loss(tracer.noise(noisy), noisy - xb)
        return loss, {"noise_mse": loss.item()}

    return fit(tracer.noise, x, labels, step, epochs=spec.epochs, batch_size=spec.batch_size,
               lr=spec.lr, seed=seed, device=device, checkpoint=checkpoint,
               desc="tracer T_0 (noise predictor)", progress=progress)


def _tracer_subset(x: Tensor, spec: TracerTraining) -> tuple[Tensor, Tensor]:
    if spec.n_train is not None:
        x = x[:spec.n_train]
    return x, torch.zeros(len(x), dtype=torch.long)


def _device_gen(gen: torch.Generator, like: Tensor) -> torch.Generator | None:
    """The CPU generator drives noise on CPU; on CUDA, draw from the device's default stream."""
    return gen if like.device.type == "cpu" else None
