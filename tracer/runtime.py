"""Process settings: torch's CPU forward passes as fast as the machine allows, and CUDA's in full
float32.

On CUDA, cuDNN runs float32 convolutions in TF32 by default (10 bits of mantissa). A
decision-based attack walks to within float error of a copy's boundary and reads labels there,
where TF32's error decides them by the batch (and so the algorithm) a query lands in, and tracing
compares scores across copies: :func:`exact_float32` turns TF32 off for the whole process
(README, "On a GPU", has what was measured with and without it).

On the CPU, glibc serves every allocation above its mmap threshold (128 KiB at first, adjusted
up to 32 MiB) with a fresh ``mmap`` and returns it to the system on free, so each forward pass
over a batch whose activations exceed it pays page faults anew: a copy's forward pass over 160
images ran at 2,200-3,800 images per second on 2 cores, 5,600-6,400 with the heap kept (see
benchmarks/bench_attack.py). Keeping freed memory in the heap costs at most the peak of one
batch's activations. On other C libraries (macOS, musl) nothing is changed.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameters (malloc.h)
_KEEP = 1 << 30                                # bytes: allocations below this stay in the heap
_done = False


def keep_heap() -> bool:
    """Make glibc keep freed memory for reuse (idempotent); whether it applied."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP))
    return _done


def exact_float32() -> None:
    """Compute float32 on CUDA in float32: no TF32 in cuDNN convolutions or CUDA matmuls."""
    import torch
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
