"""Attacks from the Adversarial Robustness Toolbox (ART) run against a counted oracle.

ART's decision-based attacks (HopSkipJump, Boundary: the ones the paper used) see the copy only
through a ``BlackBoxClassifier`` whose predict function is our :class:`HardLabelOracle`, so they get
labels and nothing else, and every query is counted. ART attacks one image at a time internally;
we do the same so that each image's queries are known exactly.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from tracer.attacks.oracle import HardLabelOracle, QueryBudgetExceeded

ART_DECISION_ATTACKS = ("HopSkipJump", "BoundaryAttack")


class ArtDecisionAttack:
    """``perturb(x, y) -> x_adv`` with an ART decision-based attack; untargeted.

    ``params`` go to the ART attack's constructor (e.g. ``max_iter``, ``max_eval``).
    ``last_queries`` holds the queries each image of the last call used.
    """

    def __init__(self, predict: HardLabelOracle, attack: str = "HopSkipJump", **params):
        if attack not in ART_DECISION_ATTACKS:
            raise ValueError(f"unknown ART decision attack {attack!r}; known: {ART_DECISION_ATTACKS}")
        if not isinstance(predict, HardLabelOracle):
            raise TypeError("a decision-based attack takes a HardLabelOracle")
        self.oracle, self.attack, self.params = predict, attack, dict(params)
        self.last_queries = torch.zeros(0, dtype=torch.long)
        logging.getLogger("art").setLevel(logging.WARNING)

    def _build(self, shape: tuple[int, ...]):
        from art.attacks import evasion
        from art.estimators.classification import BlackBoxClassifier
        classifier = BlackBoxClassifier(self.oracle.one_hot, input_shape=shape,
                                        nb_classes=self.oracle.num_classes, clip_values=(0.0, 1.0))
        return getattr(evasion, self.attack)(classifier, targeted=False, verbose=False,
                                             **self.params)

    def perturb(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Shape: x [n, C, H, W] in [0, 1]; y [n] true labels -> x_adv like x (detached).
        An image whose attack ran out of budget comes back unchanged (a failure)."""
        art_attack = self._build(tuple(x.shape[1:]))
        x_np = x.detach().cpu().numpy().astype(np.float32)
        if y is None:
            self.oracle.reset(len(x))
            y = self.oracle(x_np)
        y_np = np.eye(self.oracle.num_classes, dtype=np.float32)[y.cpu().numpy()]
        out, queries = np.empty_like(x_np), []
        for i in range(len(x_np)):
            self.oracle.reset(1)
            try:
                out[i] = art_attack.generate(x_np[i:i + 1], y=y_np[i:i + 1])[0]
            except QueryBudgetExceeded:
                out[i] = x_np[i]
            queries.append(self.oracle.queries)
        self.last_queries = torch.tensor(queries, dtype=torch.long)
        return torch.from_numpy(np.clip(out, 0.0, 1.0)).to(x.device)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"ART.{self.attack}(untargeted, {args}, budget={self.oracle.budget})"
