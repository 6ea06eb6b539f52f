"""Evidence: adversarial examples handed to the investigator, and their file format.

An evidence file is an ``.npz`` read with ``allow_pickle=False``. Everything in it is checked
before use; a malformed file is refused with a message that names the file and the problem.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tracer.io import IntegrityError, load_npz, save_npz

RANGE_TOLERANCE = 1e-4
_INT_FIELDS = ("y_true", "y_adv", "source", "queries", "clean_index")


class EvidenceError(IntegrityError):
    """Evidence that cannot be traced as it is (wrong shape, dtype, range, labels, ...)."""


@dataclass
class Evidence:
    """n adversarial examples; ``source`` is the copy they were made on (-1: unknown).

    Shape: x [n, C, H, W] float32 in [0, 1]; y_true, y_adv, source, queries, clean_index [n].
    """

    x: Tensor
    y_true: Tensor
    y_adv: Tensor
    source: Tensor
    queries: Tensor
    clean_index: Tensor
    attack: str = ""
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)

    def select(self, mask: Tensor) -> "Evidence":
        """The examples where ``mask`` ([n] bool, or indices) holds."""
        return Evidence(self.x[mask], *(getattr(self, f)[mask] for f in _INT_FIELDS),
                        attack=self.attack, params=dict(self.params))

    @staticmethod
    def concat(parts: list["Evidence"]) -> "Evidence":
        if not parts:
            raise EvidenceError("no evidence to concatenate")
        return Evidence(torch.cat([p.x for p in parts]),
                        *(torch.cat([getattr(p, f) for p in parts]) for f in _INT_FIELDS),
                        attack=parts[0].attack, params=dict(parts[0].params))

    def save(self, path: str | Path) -> None:
        save_npz(path, x=self.x.detach().cpu().numpy().astype(np.float32),
                 **{f: getattr(self, f).cpu().numpy().astype(np.int64) for f in _INT_FIELDS},
                 attack=np.array(self.attack), params=np.array(json.dumps(self.params)))

    @staticmethod
    def load(path: str | Path, *, shape: tuple[int, ...] | None = None,
             num_classes: int | None = None, expected_sha256: str | None = None,
             allow_empty: bool = False) -> "Evidence":
        """Read and validate an evidence file (see :func:`validate_arrays`)."""
        arrays = load_npz(path, expected_sha256)
        validate_arrays(arrays, shape=shape, num_classes=num_classes, where=str(path),
                        allow_empty=allow_empty)
        n = len(arrays["x"])
        ints = {f: torch.as_tensor(arrays[f].astype(np.int64)) if f in arrays
                else torch.full((n,), -1, dtype=torch.long) for f in _INT_FIELDS}
        try:
            params = json.loads(str(arrays["params"])) if "params" in arrays else {}
        except json.JSONDecodeError as err:
            raise EvidenceError(f"{path}: field 'params' is not JSON ({err})") from None
        return Evidence(torch.as_tensor(arrays["x"].astype(np.float32)), **ints,
                        attack=str(arrays.get("attack", "")), params=params)


def validate_arrays(arrays: dict[str, np.ndarray], *, shape: tuple[int, ...] | None = None,
                    num_classes: int | None = None, where: str = "evidence",
                    allow_empty: bool = False) -> None:
    """Refuse evidence that is not n >= 1 finite float images in [0, 1] of ``shape`` with
    integer labels in [0, num_classes); only ``x`` is required."""
    if "x" not in arrays:
        raise EvidenceError(f"{where}: no field 'x' (the adversarial images)")
    x = arrays["x"]
    if x.dtype.kind != "f":
        raise EvidenceError(f"{where}: x has dtype {x.dtype}; expected float images in [0, 1]")
    if x.ndim != 4:
        raise EvidenceError(f"{where}: x has shape {x.shape}; expected [n, C, H, W]")
    if len(x) == 0 and not allow_empty:
        raise EvidenceError(f"{where}: contains no images")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise EvidenceError(f"{where}: images are {tuple(x.shape[1:])}; the copies take "
                            f"{tuple(shape)} (another data set?)")
    if len(x) == 0:
        return
    if not np.isfinite(x).all():
        raise EvidenceError(f"{where}: x contains NaN or Inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise EvidenceError(f"{where}: pixel values span [{lo:.3g}, {hi:.3g}]; expected [0, 1] "
                            "(were the images normalised or left in 0..255?)")
    for f in _INT_FIELDS:
        if f not in arrays:
            continue
        a = arrays[f]
        if a.dtype.kind not in "iu" or a.shape != (len(x),):
            raise EvidenceError(f"{where}: field {f!r} must be {len(x)} integers; "
                                f"got dtype {a.dtype}, shape {a.shape}")
    for f in ("y_true", "y_adv"):
        if f in arrays and num_classes is not None:
            a = arrays[f]
            if a.size and (a.min() < 0 or a.max() >= num_classes):
                raise EvidenceError(f"{where}: {f} holds labels outside 0..{num_classes - 1}")
    for f in ("attack", "params"):
        if f in arrays and (arrays[f].dtype.kind != "U" or arrays[f].ndim != 0):
            raise EvidenceError(f"{where}: field {f!r} must be one string")
