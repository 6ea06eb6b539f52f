"""Ship a copy: buyer i's model as a TorchScript file that holds copy i's key and no other's.

Before anything is written, the exported model's outputs are checked against the run's copy i on
the run's test images; the file is written atomically (a temp file, then a rename).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
from torch import Tensor

from tracer.io import atomic_write_bytes
from tracer.runs import Run

TOLERANCE = 1e-5   # the largest |exported - copy| allowed on the test images


class ExportError(ValueError):
    """The copy could not be exported faithfully (its outputs differ, or the index is wrong)."""


@torch.no_grad()
def export_copy(run: Run, index: int, out: str | Path, images: Tensor,
                batch_size: int = 256) -> float:
    """Write copy ``index`` of ``run`` to ``out`` as TorchScript (traced and frozen) after checking
    it against the run's copy on ``images`` [n, C, H, W]; returns the largest output difference."""
    copies = run.load_copies()
    if not 0 <= index < copies.num_copies:
        raise ExportError(f"--copy {index}: {run.path} has copies 0..{copies.num_copies - 1}")
    reference = copies.copy(index).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # TorchScript's deprecation and tracer warnings
        scripted = torch.jit.freeze(torch.jit.trace(copies.sold(index).eval(), images[:2],
                                                    check_trace=False))
    worst = 0.0
    for s in range(0, len(images), batch_size):
        xb = images[s:s + batch_size]
        worst = max(worst, float((scripted(xb) - reference(xb)).abs().max()))
    if worst > TOLERANCE:
        raise ExportError(f"copy {index}: the exported model's outputs differ from the run's by "
                          f"{worst:.2e} (> {TOLERANCE:g}) on the test images; nothing written")
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    atomic_write_bytes(out, buf.getvalue())
    return worst
