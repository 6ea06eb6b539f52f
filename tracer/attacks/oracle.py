"""What an attacker may see of its own copy, with every query counted (the threat models).

- :class:`HardLabelOracle`: top-1 labels only (decision-based attacks; the paper's threat model).
- :class:`ScoreOracle`: the output scores, no gradient (score-based attacks).
- :class:`WhiteBoxModel`: the whole differentiable model (white-box attacks).
An attack that asks for more than its view allows fails loudly with :class:`ThreatModelViolation`;
one that spends more than its budget fails with :class:`QueryBudgetExceeded`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from tracer.models.inference import frozen

THREATS = ("decision", "score", "whitebox")


class ThreatModelViolation(RuntimeError):
    """The attack asked for information its threat model does not give it."""


class QueryBudgetExceeded(RuntimeError):
    """The attack used more queries than its budget allows."""


class _Counted:
    """Counts every input row sent to the model and enforces an optional per-image budget."""

    def __init__(self, model: nn.Module, num_classes: int, device: torch.device | str = "cpu",
                 budget: int | None = None):
        self._model, self.device, self.budget = model, torch.device(device), budget
        self.num_classes = num_classes
        self.queries = 0
        self._allowance: int | None = None
        self._fast: Callable[[Tensor], Tensor] | None = None

    def reset(self, num_images: int = 1) -> None:
        """Start counting for a new batch of ``num_images`` images (budget scales with it)."""
        self.queries = 0
        self._allowance = None if self.budget is None else self.budget * num_images

    def _count(self, n: int) -> None:
        if self._allowance is not None and self.queries + n > self._allowance:
            raise QueryBudgetExceeded(f"{self.queries + n} queries exceed the budget of "
                                      f"{self.budget} per image")
        self.queries += n

    def _forward(self, x: Tensor) -> Tensor:
        """The model's output, from its frozen form (tracer.models.inference), made at the
        first query: a black-box view needs no gradient."""
        if self._fast is None:
            self._fast = frozen(self._model, x)
        return self._fast(x)

    def _as_input(self, x: Tensor | np.ndarray) -> Tensor:
        if isinstance(x, Tensor) and x.requires_grad:
            raise ThreatModelViolation(f"{type(self).__name__} gives no gradients; "
                                       "use a white-box attack for that")
        return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x,
                               dtype=torch.float32, device=self.device)


class HardLabelOracle(_Counted):
    """``oracle(x) -> labels [n]``: argmax of the copy's output, nothing else."""

    @torch.no_grad()
    def __call__(self, x: Tensor | np.ndarray) -> Tensor:
        x = self._as_input(x)
        self._count(len(x))
        return self._forward(x).argmax(-1)

    def one_hot(self, x: np.ndarray) -> np.ndarray:
        """Labels as a one-hot float32 array (the form ART's BlackBoxClassifier expects)."""
        labels = self(x).cpu().numpy()
        out = np.zeros((len(labels), self.num_classes), dtype=np.float32)
        out[np.arange(len(labels)), labels] = 1.0
        return out

    def scores(self, x: Tensor) -> Tensor:
        raise ThreatModelViolation("a decision-based attacker sees labels only, not scores")

    def __getattr__(self, name: str):
        # Only reached for attributes the oracle lacks, e.g. an attack looking for `.model`,
        # `.parameters` or `.logits`: that is asking for more than labels.
        if name.startswith("__"):
            raise AttributeError(name)
        raise ThreatModelViolation(f"a hard-label oracle exposes no attribute {name!r}")


class ScoreOracle(_Counted):
    """``oracle(x) -> scores [n, K]``: the copy's output vector, detached, no gradient."""

    @torch.no_grad()
    def __call__(self, x: Tensor | np.ndarray) -> Tensor:
        x = self._as_input(x)
        self._count(len(x))
        return self._forward(x)


class WhiteBoxModel(nn.Module):
    """The copy itself, differentiable; counts forward rows as queries."""

    def __init__(self, model: nn.Module, num_classes: int, budget: int | None = None):
        super().__init__()
        self.model, self.num_classes = model, num_classes
        self.counter = _Counted(model, num_classes, budget=budget)

    @property
    def queries(self) -> int:
        return self.counter.queries

    def reset(self, num_images: int = 1) -> None:
        self.counter.reset(num_images)

    def forward(self, x: Tensor) -> Tensor:
        self.counter._count(len(x))
        return self.model(x)


def make_view(model: nn.Module, threat: str, num_classes: int, device: torch.device | str = "cpu",
              budget: int | None = None):
    """The attacker's view of ``model`` under ``threat`` (one of THREATS)."""
    if threat == "decision":
        return HardLabelOracle(model, num_classes, device, budget)
    if threat == "score":
        return ScoreOracle(model, num_classes, device, budget)
    if threat == "whitebox":
        return WhiteBoxModel(model, num_classes, budget)
    raise ValueError(f"unknown threat model {threat!r}; known: {THREATS}")
