"""Adaptive attackers (issue 7): buyers who know tracer exists and try to evade it.

An adaptive attacker changes what the attack runs on (its copy after fine-tuning or pruning, the
copy averaged over random transforms (EOT), a surrogate trained on the copy's labels, or the copy
without its tracer when T_i has leaked) and/or what it hands on (evidence post-processed with
noise, JPEG or a shift). Evidence is kept only where, after all that, it still fools the copy
the buyer was sold; :func:`attacker_model` and :func:`post_process` are the two hooks
:func:`tracer.attacks.generate.attack_copy` calls.
"""
from __future__ import annotations

import copy as _copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tracer.models.backbones import build_classifier
from tracer.transforms import gaussian_noise, jpeg, shift

ADAPTIVE = ("none", "gaussian", "jpeg", "shift", "eot", "surrogate", "finetune", "prune",
            "leaked_tracer")
_POST = ("gaussian", "jpeg", "shift")


@dataclass
class AdaptiveSpec:
    """One adaptive attacker. ``kind`` in ADAPTIVE; the other fields are read by some kinds:
    gaussian/eot: ``std``; jpeg: ``quality``; shift: ``pixels``; eot: ``samples``;
    surrogate/finetune: ``epochs`` over ``n_train`` images labelled by the copy; prune:
    ``fraction`` of each weight tensor's smallest-magnitude entries set to zero."""
    kind: str = "none"
    std: float = 0.03
    quality: int = 75
    pixels: int = 1
    samples: int = 8
    epochs: int = 2
    n_train: int = 5000
    fraction: float = 0.3

    def __post_init__(self):
        if self.kind not in ADAPTIVE:
            raise ValueError(f"unknown adaptive attacker {self.kind!r}; known: {ADAPTIVE}")
        if not 0 <= self.fraction < 1:
            raise ValueError(f"prune fraction must be in [0, 1), got {self.fraction}")


class EOTModel(nn.Module):
    """The copy's softmax averaged over ``samples`` Gaussian perturbations of its input: what an
    attacker using expectation over transformation attacks."""

    def __init__(self, model: nn.Module, std: float, samples: int):
        super().__init__()
        self.model, self.std, self.samples = model, std, samples

    def forward(self, x: Tensor) -> Tensor:
        outs = [torch.softmax(self.model((x + self.std * torch.randn_like(x)).clamp(0, 1)), -1)
                for _ in range(self.samples)]
        return torch.stack(outs).mean(0)


class WithoutTracer(nn.Module):
    """norm(C(x)) (or norm(C_i(x))): the copy with alpha * T_i subtracted, by a buyer who holds
    a leaked T_i."""

    def __init__(self, copy: nn.Module):
        super().__init__()
        self.copy = copy

    def forward(self, x: Tensor) -> Tensor:
        return self.copy.classifier_output(x)


def post_process(spec: AdaptiveSpec, x_adv: Tensor, seed: int = 0) -> Tensor:
    """What the attacker does to its adversarial examples before handing them on."""
    if spec.kind == "gaussian":
        return gaussian_noise(x_adv, spec.std, seed)
    if spec.kind == "jpeg":
        return jpeg(x_adv, spec.quality)
    if spec.kind == "shift":
        return shift(x_adv, spec.pixels)
    return x_adv


def attacker_model(spec: AdaptiveSpec, copy: nn.Module, x_train: Tensor, num_classes: int, *, seed: int = 0,
                   device: torch.device | str = "cpu") -> nn.Module:
    """The model the attack runs on, built from the buyer's ``copy`` (never modified)."""
    if spec.kind in ("none", *_POST):
        return copy
    if spec.kind == "eot":
        return EOTModel(copy, spec.std, spec.samples).eval()
    if spec.kind == "leaked_tracer":
        if not hasattr(copy, "classifier_output"):
            raise ValueError("the leaked_tracer attacker needs the tracer method's copies")
        return WithoutTracer(copy).eval()
    if spec.kind == "prune":
        return prune(copy, spec.fraction)
    x = x_train[torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))
                [: spec.n_train]]
    with torch.no_grad():
        y = torch.cat([copy(x[i:i + 512].to(device)).argmax(-1).cpu()
                       for i in range(0, len(x), 512)])
    if spec.kind == "finetune":
        return _fit(_copy.deepcopy(copy), x, y, spec.epochs, seed, device, lr=1e-4)
    torch.manual_seed(seed)  # the surrogate: a fresh small CNN
    c, h = x.shape[1], x.shape[2]
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    surrogate = build_classifier("small_cnn", num_classes, c, h, mean, std)
    return _fit(surrogate, x, y, spec.epochs, seed, device, lr=1e-3)


def prune(model: nn.Module, fraction: float) -> nn.Module:
    """A deep copy of ``model`` with each weight tensor's ``fraction`` smallest-magnitude
    entries set to zero (global magnitude pruning per tensor)."""
    pruned = _copy.deepcopy(model)
    with torch.no_grad():
        for name, p in pruned.named_parameters():
            if p.ndim > 1 and fraction > 0:
                k = int(fraction * p.numel())
                if k:
                    cut = p.abs().flatten().kthvalue(k).values
                    p[p.abs() <= cut] = 0.0
    return pruned.eval()


def _fit(model: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int, device,
         lr: float) -> nn.Module:
    """Cross-entropy of the model's outputs, read as logits, against the copy's labels (a
    copy's outputs are scores, not logits; their argmax is all a buyer is sold)."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(128):
            loss = F.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()
