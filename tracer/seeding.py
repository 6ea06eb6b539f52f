"""Seeds for separate random streams, all derived from a run's one seed.

Two generators seeded alike draw the same numbers. The residual tracer's projection P is
``torch.randn(K, d)`` from ``manual_seed(seed)``; Gaussian noise drawn for K images from that
same seed was P's rows, so image k's noise lay along copy-specific direction k (docs/method.md,
section 5). Every stream that is not a key draws from ``derived_seed(seed, purpose)`` instead.
"""
from __future__ import annotations

import hashlib


def derived_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose``'s stream, unrelated to ``seed`` itself and to any other
    purpose's (a hash of both)."""
    digest = hashlib.sha256(f"{purpose}\0{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
