"""The copies a seller ships: ``M_i(x) = norm(C(x)) + alpha * T_i(x)`` with ``T_i = pi_i(T_0)``.

:class:`CopyFamily` holds the shared parts (C, T_0) and the secret permutations; it evaluates all
m copies from one pass of C and T_0, which is what makes tracing cost almost flat in m.
:class:`Copy` is one buyer's model, an ordinary ``nn.Module`` an attacker can be handed.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

OUTPUT_NORMS = ("softmax", "minmax")


class OutputNorm(nn.Module):
    """Maps C's logits into [0, 1] (paper.md: "C's output normalised to [0,1]").

    ``softmax`` (default) divides logits by ``temperature`` first; ``minmax`` maps each row's
    smallest logit to 0 and its largest to 1, which keeps the gap between the top classes wider
    than softmax does (docs/method.md).
    """

    def __init__(self, kind: str = "softmax", temperature: float = 1.0):
        super().__init__()
        if kind not in OUTPUT_NORMS:
            raise ValueError(f"unknown output norm {kind!r}; known: {OUTPUT_NORMS}")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.kind, self.temperature = kind, float(temperature)

    def forward(self, logits: Tensor) -> Tensor:
        if self.kind == "softmax":
            return torch.softmax(logits / self.temperature, dim=-1)
        lo = logits.min(dim=-1, keepdim=True).values
        hi = logits.max(dim=-1, keepdim=True).values
        return (logits - lo) / (hi - lo).clamp_min(1e-12)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, temperature={self.temperature}"


class CopyFamily(nn.Module):
    """All m copies of one classifier: shared C and T_0, one output permutation per copy.

    Shape: permutations [m, K] (row i maps tracer slot k to T_0 output permutations[i, k]).
    """

    def __init__(self, base: nn.Module, tracer: nn.Module, permutations: Tensor, alpha: float,
                 norm: OutputNorm):
        super().__init__()
        if permutations.ndim != 2:
            raise ValueError("permutations must be [num_copies, num_classes]")
        self.base, self.tracer, self.norm = base, tracer, norm
        self.register_buffer("permutations", permutations.long().clone())
        self.alpha = float(alpha)

    @property
    def num_copies(self) -> int:
        return self.permutations.shape[0]

    @property
    def num_classes(self) -> int:
        return self.permutations.shape[1]

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(norm(C(x)), T_0(x)), each [n, K]: everything the m copies need, computed once."""
        return self.norm(self.base(x)), self.tracer(x)

    def tracer_pre_activation(self, x: Tensor) -> Tensor:
        """T_0 before its final tanh, [n, K] (T_0 = tanh of it)."""
        return self.tracer.pre_activation(x)

    def permuted(self, t0: Tensor) -> Tensor:
        """T_0 outputs [n, K] -> every copy's tracer outputs [n, m, K]."""
        return t0[:, self.permutations]

    def outputs(self, x: Tensor) -> Tensor:
        """Every copy's output M_i(x): [n, m, K]."""
        c, t0 = self.parts(x)
        return c.unsqueeze(1) + self.alpha * self.permuted(t0)

    def predict(self, x: Tensor) -> Tensor:
        """Every copy's label for x: [n, m]."""
        return self.outputs(x).argmax(dim=-1)

    def copy(self, index: int) -> "Copy":
        if not 0 <= index < self.num_copies:
            raise IndexError(f"copy {index} out of range 0..{self.num_copies - 1}")
        return Copy(self, index)


class Copy(nn.Module):
    """Buyer ``index``'s model M_i = norm(C) + alpha * pi_i(T_0); outputs [n, K]."""

    def __init__(self, family: CopyFamily, index: int):
        super().__init__()
        self.family, self.index = family, index

    def tracer_outputs(self, x: Tensor) -> Tensor:
        return self.family.tracer(x)[:, self.family.permutations[self.index]]

    def forward(self, x: Tensor) -> Tensor:
        c, t0 = self.family.parts(x)
        return c + self.family.alpha * t0[:, self.family.permutations[self.index]]
