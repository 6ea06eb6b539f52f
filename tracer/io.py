"""Safe file I/O: atomic writes (temp file + rename), sha256, and loads that never unpickle.

Checkpoints and evidence are untrusted input: tensors load with ``torch.load(weights_only=True)``,
arrays with ``numpy.load(allow_pickle=False)``, everything else is JSON.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


class IntegrityError(RuntimeError):
    """A file is missing, unreadable, tampered with or does not match what it claims to be."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IntegrityError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IntegrityError(f"{path}: not valid JSON ({err})") from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_sha256(t: torch.Tensor) -> str:
    """sha256 of a tensor's values (contiguous, on the CPU): keys rebuilt from a seed are
    checked against it."""
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def check_sha256(path: str | Path, expected: str | None) -> None:
    """Refuse ``path`` if it is missing or its sha256 differs from ``expected`` (None: no check)."""
    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"{path}: file not found")
    if expected is not None and sha256_file(path) != expected:
        raise IntegrityError(f"{path}: sha256 does not match the manifest (tampered or replaced)")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to memory, then an atomic write; ``obj`` must be weights_only-loadable."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_weights(path: str | Path, expected_sha256: str | None = None) -> Any:
    """Load a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    check_sha256(path, expected_sha256)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or hostile files
        raise IntegrityError(f"{path}: not a readable weights-only checkpoint "
                             f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | Path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read with ``allow_pickle=False``."""
    check_sha256(path, expected_sha256)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise IntegrityError(f"{path}: not a readable .npz file without pickled objects "
                             f"({type(err).__name__}: {str(err)[:200]})") from None


def save_npy(path: str | Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def load_npy(path: str | Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise IntegrityError(f"{path}: not a readable .npy file ({err})") from None
