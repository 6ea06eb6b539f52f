"""Training loops for the classifier C and the base tracer T_0 (paper.md, "Separation").

Both use :func:`fit`: plain epochs over in-memory tensors, Adam, a progress bar, and an atomic
per-epoch checkpoint, so an interrupted stage resumes from its last finished epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from tracer.data import batches
from tracer.io import atomic_torch_save, load_weights
from tracer.separation.losses import (add_noise, noise_prediction_loss, noise_sensitive_loss,
                                      random_noise_levels, vae_loss)


@dataclass
class ClassifierTraining:
    """How C is trained (cross-entropy on its logits)."""
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class TracerTraining:
    """How T_0 is trained. The VAE tracer (paper): ``lam * (MSE + KL) + L_trap`` on (x, x + xi)
    pairs. The residual tracer (ours): noise prediction at std uniform in [0, noise_scale]."""
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    noise: str = "gaussian"
    noise_scale: float = 0.1
    n_train: int | None = None  # train T_0 on a subset of the training images
    lam: float = 0.001          # vae: weight of the VAE terms (paper: 0.001)
    theta_deg: float = 75.0     # vae: the angle noise turns T_0's output by (paper: 75 degrees)
    trap_form: str = "abs"      # vae: |cos - cos(theta)| or its square
    clean_fraction: float = 0.2  # residual: share of training images left clean


Step = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, dict[str, float]]]


def fit(model: nn.Module, x: Tensor, y: Tensor, step: Step, *, epochs: int, batch_size: int,
        lr: float, weight_decay: float = 0.0, seed: int = 0, device: torch.device | str = "cpu",
        checkpoint: Path | None = None, desc: str = "train", progress: bool = True) -> list[dict]:
    """Run ``epochs`` of Adam on ``step(xb, yb, gen) -> (loss, logs)``; returns one row per epoch.

    Batches are shuffled by a generator seeded with (seed, epoch), so a resumed run sees the same
    batches as an uninterrupted one.
    """
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict] = []
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        state = load_weights(checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, start = list(state["history"]), int(state["epoch"])
    for epoch in range(start, epochs):
        model.train()
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        sums: dict[str, float] = {}
        n_seen = 0
        bar = tqdm(list(batches(len(x), batch_size, gen)), desc=f"{desc} {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for idx in bar:
            xb, yb = x[idx].to(device), y[idx].to(device)
            loss, logs = step(xb, yb, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            n_seen += len(idx)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        history.append({"epoch": epoch + 1, **{k: v / n_seen for k, v in sums.items()}})
        if checkpoint is not None:
            atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "epoch": epoch + 1, "history": history}, checkpoint)
    model.eval()
    return history


def train_classifier(model: nn.Module, x: Tensor, y: Tensor, spec: ClassifierTraining, *,
                     seed: int = 0, device: torch.device | str = "cpu",
                     checkpoint: Path | None = None, progress: bool = True) -> list[dict]:
    """Train C with cross-entropy. Shape: x [N, C, H, W] in [0, 1]; y [N]."""
    def step(xb: Tensor, yb: Tensor, gen: torch.Generator):
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        acc = (logits.argmax(1) == yb).float().mean().item()
        return loss, {"ce": loss.item(), "train_acc": acc}

    return fit(model, x, y, step, epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
               weight_decay=spec.weight_decay, seed=seed, device=device, checkpoint=checkpoint,
               desc="classifier C", progress=progress)


def train_vae_tracer(vae: nn.Module, x: Tensor, spec: TracerTraining, *, seed: int = 0,
                     device: torch.device | str = "cpu", checkpoint: Path | None = None,
                     progress: bool = True) -> list[dict]:
    """Train the VAE whose encoder is T_0 (paper.md): each batch and its noisy twin go through
    the VAE together; the loss is ``lam * (MSE + KL) + L_trap``."""
    x, labels = _tracer_subset(x, spec)

    def step(xb: Tensor, _: Tensor, gen: torch.Generator):
        xn = add_noise(xb, spec.noise, spec.noise_scale, generator=_device_gen(gen, xb))
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

    def step(xb: Tensor, _: Tensor, gen: torch.Generator):
        sigma = random_noise_levels(len(xb), spec.noise_scale, spec.clean_fraction, gen)
        noisy = add_noise(xb, spec.noise, sigma.to(xb.device), generator=_device_gen(gen, xb))
        loss = noise_prediction_loss(tracer.noise(noisy), noisy - xb)
        return loss, {"noise_mse": loss.item()}

    return fit(tracer.noise, x, labels, step, epochs=spec.epochs, batch_size=spec.batch_size,
               lr=spec.lr, seed=seed, device=device, checkpoint=checkpoint,
               desc="tracer T_0 (noise predictor)", progress=progress)


TRAINERS = {"vae": train_vae_tracer, "residual": train_residual_tracer}


def _tracer_subset(x: Tensor, spec: TracerTraining) -> tuple[Tensor, Tensor]:
    if spec.n_train is not None:
        x = x[:spec.n_train]
    return x, torch.zeros(len(x), dtype=torch.long)


def _device_gen(gen: torch.Generator, like: Tensor) -> torch.Generator | None:
    """The CPU generator drives noise on CPU; on CUDA, draw from the device's default stream."""
    return gen if like.device.type == "cpu" else None


@torch.no_grad()
def predict_labels(model: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 512,
                   device: torch.device | str = "cpu") -> Tensor:
    """argmax of ``model(x)`` over its last axis, batched; a CPU tensor ([n] for one model,
    [n, m] for ``CopyFamily.outputs``)."""
    out = [model(x[idx].to(device)).argmax(-1).cpu() for idx in batches(len(x), batch_size)]
    return torch.cat(out)
