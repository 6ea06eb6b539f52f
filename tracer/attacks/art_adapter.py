"""Attacks from the Adversarial Robustness Toolbox (ART) run against a counted oracle.

ART's decision-based attacks (HopSkipJump, Boundary: the ones the paper used; Sign-OPT) see the
copy only through a ``BlackBoxClassifier`` whose predict function is our :class:`HardLabelOracle`,
so they get labels and nothing else; its score-based ones (Square, SimBA) get a
:class:`ScoreOracle`'s scores. Every query is counted. We hand ART one image at a time so that each
image's queries are known exactly. Its white-box ones (PGD) get the copy itself
(:class:`ArtWhiteBox`): implementations that are not ours, to check that tracing holds on them.
"""
from __future__ import annotations

import inspect
import itertools
import logging
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from tracer.attacks.oracle import HardLabelOracle, QueryBudgetExceeded, ScoreOracle, WhiteBoxModel

# ART attack class -> the view it needs
ART_ATTACKS = {"HopSkipJump": HardLabelOracle, "BoundaryAttack": HardLabelOracle,
               "SignOPTAttack": HardLabelOracle, "SquareAttack": ScoreOracle, "SimBA": ScoreOracle}
# ART's white-box attacks offered (they get the copy itself: ArtWhiteBox)
ART_WHITE_BOX = ("ProjectedGradientDescent", "BasicIterativeMethod", "FastGradientMethod")


class ArtAttack:
    """``perturb(x, y) -> x_adv`` with an ART decision- or score-based attack; untargeted.

    ``params`` go to the ART attack's constructor (e.g. ``max_iter``, ``max_eval``); a name that
    clashes with ours takes a trailing underscore (SimBA's ``attack_="dct"``).
    ``last_queries`` holds the queries each image of the last call used.
    """

    def __init__(self, predict: HardLabelOracle | ScoreOracle, attack: str = "HopSkipJump",
                 **params):
        params = {k.rstrip("_"): v for k, v in params.items()}
        if attack not in ART_ATTACKS:
            raise ValueError(f"unknown ART attack {attack!r}; known: {sorted(ART_ATTACKS)}")
        if not isinstance(predict, ART_ATTACKS[attack]):
            raise TypeError(f"ART {attack} takes a {ART_ATTACKS[attack].__name__}, "
                            f"not a {type(predict).__name__}")
        self.oracle, self.attack, self.params = predict, attack, dict(params)
        self.last_queries = torch.zeros(0, dtype=torch.long)
        logging.getLogger("art").setLevel(logging.WARNING)

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        # A copy's output C + alpha * T is no distribution, and SimBA refuses anything else; the
        # softmax is the attacker's own post-processing of what it saw, no extra information.
        return torch.softmax(self.oracle(x), dim=-1).cpu().numpy()

    def _build(self, shape: tuple[int, ...]):
        from art.attacks import evasion
        from art.estimators.classification import (BlackBoxClassifier,
                                                   BlackBoxClassifierNeuralNetwork)
        if isinstance(self.oracle, HardLabelOracle):
            classifier = BlackBoxClassifier(self.oracle.one_hot, input_shape=shape,
                                            nb_classes=self.oracle.num_classes,
                                            clip_values=(0.0, 1.0))
        else:  # SimBA asks for a "neural network" estimator; it only calls predict
            classifier = BlackBoxClassifierNeuralNetwork(self._probabilities, input_shape=shape,
                                                         nb_classes=self.oracle.num_classes,
                                                         clip_values=(0.0, 1.0))
        cls = getattr(evasion, self.attack)
        accepts = inspect.signature(cls).parameters
        fixed = {k: v for k, v in (("targeted", False), ("verbose", False)) if k in accepts}
        return cls(classifier, **fixed, **self.params)   # Square is untargeted only

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
        with _seeded_numpy(int(np.random.randint(2**31))):
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


class ArtWhiteBox:
    """``perturb(x, y) -> x_adv`` with an ART white-box attack (one of ``ART_WHITE_BOX``) on the
    copy itself, untargeted, through ART's ``PyTorchClassifier`` with the cross-entropy of the
    copy's output, as a buyer handed the model would set it up (our advertorch PGD takes the
    margin instead: cross-entropy saturates on these outputs). ``params`` go to the attack's
    constructor; ``last_queries`` holds each image's share of the forward rows."""

    def __init__(self, model: WhiteBoxModel, attack: str = "ProjectedGradientDescent",
                 **params):
        if attack not in ART_WHITE_BOX:
            raise ValueError(f"unknown ART white-box attack {attack!r}; known: "
                             f"{sorted(ART_WHITE_BOX)}")
        if not isinstance(model, WhiteBoxModel):
            raise TypeError(f"ART {attack} takes a WhiteBoxModel, not a {type(model).__name__}")
        self.model, self.attack, self.params = model, attack, dict(params)
        self.last_queries = torch.zeros(0, dtype=torch.long)
        logging.getLogger("art").setLevel(logging.WARNING)

    def perturb(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Shape: x [n, C, H, W] in [0, 1]; y [n] true labels -> x_adv like x (detached)."""
        from art.attacks import evasion
        from art.estimators.classification import PyTorchClassifier
        self.model.reset(len(x))
        if y is None:
            with torch.no_grad():
                y = self.model(x).argmax(-1)
        classifier = PyTorchClassifier(self.model, torch.nn.CrossEntropyLoss(),
                                       input_shape=tuple(x.shape[1:]),
                                       nb_classes=self.model.num_classes, clip_values=(0.0, 1.0),
                                       device_type="gpu" if x.is_cuda else "cpu")
        cls = getattr(evasion, self.attack)
        quiet = {"verbose": False} if "verbose" in inspect.signature(cls).parameters else {}
        attack = cls(classifier, **quiet, **self.params)
        y_np = np.eye(self.model.num_classes, dtype=np.float32)[y.cpu().numpy()]
        with _seeded_numpy(int(np.random.randint(2**31))):
            out = attack.generate(x.detach().cpu().numpy().astype(np.float32), y=y_np)
        self.last_queries = torch.full((len(x),), self.model.queries // max(1, len(x)),
                                       dtype=torch.long)
        return torch.from_numpy(np.clip(out, 0.0, 1.0)).to(x.device)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"ART.{self.attack}(untargeted, white-box, cross-entropy, {args})"


@contextmanager
def _seeded_numpy(seed: int):
    """Make ART's randomness a function of ``seed``: it draws from numpy's global generator, and
    HopSkipJump's starting point from a fresh ``RandomState()`` that the OS seeds, so without this
    the same command gives different evidence. Both are restored afterwards."""
    original, counter = np.random.RandomState, itertools.count()

    class SeededRandomState(original):
        def __init__(self, seed_=None):
            super().__init__(seed + next(counter) if seed_ is None else seed_)

    state = np.random.get_state()
    np.random.RandomState = SeededRandomState
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.RandomState = original
        np.random.set_state(state)
