"""Attacks from advertorch: white-box ones on the differentiable copy, SPSA on scores alone.

advertorch is imported through :mod:`tracer._compat`, which makes it importable on torch 2.x.
"""
from __future__ import annotations

import inspect

import torch
from torch import Tensor

from tracer._compat import import_advertorch_attacks
from tracer.attacks.margin import margin_loss, margin_per_example
from tracer.attacks.oracle import QueryBudgetExceeded, ScoreOracle, WhiteBoxModel


LOSSES = {"margin": margin_loss, "ce": None}  # None: advertorch's default cross-entropy


class AdvertorchAttack:
    """``perturb(x, y) -> x_adv`` with advertorch attack class ``attack`` (e.g. ``LinfPGDAttack``).

    ``predict`` is a :class:`WhiteBoxModel` for gradient attacks or a :class:`ScoreOracle` for
    SPSA; ``params`` go to the attack's constructor. ``last_queries`` holds each image's share of
    the forward passes of the last call (every image in a batch costs the same).
    """

    def __init__(self, predict: WhiteBoxModel | ScoreOracle, attack: str = "LinfPGDAttack",
                 loss: str | None = None, **params):
        attacks = import_advertorch_attacks()
        if not hasattr(attacks, attack):
            raise ValueError(f"advertorch has no attack {attack!r}")
        if loss is not None and loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known: {sorted(LOSSES)}")
        self.view, self.attack, self.params = predict, attack, dict(params, loss=loss)
        if LOSSES.get(loss) is not None:
            params["loss_fn"] = margin_per_example if isinstance(predict, ScoreOracle) \
                else LOSSES[loss]
        cls = getattr(attacks, attack)
        accepts = inspect.signature(cls).parameters
        if "num_classes" in accepts:  # CW, EAD: from the oracle
            params.setdefault("num_classes", predict.num_classes)
        if "clip_min" in accepts:     # FAB clips to [0, 1] itself
            params.update(clip_min=0.0, clip_max=1.0)
        self.adversary = cls(predict, **params)
        self.last_queries = torch.zeros(0, dtype=torch.long)

    def perturb(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Shape: x [n, C, H, W] in [0, 1]; y [n] -> x_adv like x (detached).
        A batch that runs out of budget comes back unchanged (every image a failure)."""
        self.view.reset(len(x))
        # advertorch makes some work tensors on torch's default device (FAB's projections index
        # CPU tensors with the inputs' indices): make that the inputs' device
        with torch.device(x.device):
            return self._perturb(x, y)

    def _perturb(self, x: Tensor, y: Tensor | None) -> Tensor:
        try:
            if isinstance(self.view, WhiteBoxModel):
                from advertorch.context import ctx_noparamgrad_and_eval
                with ctx_noparamgrad_and_eval(self.view):
                    x_adv = self.adversary.perturb(x.clone(), y)
            else:
                x_adv = self.adversary.perturb(x.clone(), y)
        except QueryBudgetExceeded:
            x_adv = x
        self.last_queries = torch.full((len(x),), self.view.queries // max(1, len(x)),
                                       dtype=torch.long, device="cpu")
        return x_adv.detach().clamp(0.0, 1.0)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"advertorch.{self.attack}({args})"
