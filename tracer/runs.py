"""The run directory: the contract between stages, the CLI and notebooks (docs/runs.md).

::

    <run>/config.yaml                 resolved config (written by the pipeline)
    <run>/run.json                    versions, seed, per-stage status and wall time
    <run>/separate/manifest.json      the seller's record: method, specs, alpha, keys, sha256s
    <run>/separate/{base,tracer_base}.pt or copy_<i>.pt (+ masks.npy), history_<net>.csv
    <run>/attack/<name>/evidence.npz, attack.json, parts/ (resume state)
    <run>/trace/<name>/scores.npy (+ eligible.npy), statistic.npy, verdicts.csv, trace.json
    <run>/metrics.json, results.md, plots/*.png

Only this module knows these paths. Everything read from a run is checked: sha256 against the
manifest, weights-only checkpoints, pickle-free arrays.
"""
from __future__ import annotations

import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tracer.evidence import Evidence
from tracer.io import IntegrityError, load_npy, read_json, save_npy, sha256_file, write_json
from tracer.methods import METHODS, CopySet, Stored
from tracer.models.factory import InputSpec, ModelSpec
from tracer.tracing import Scores

# 2: methods named as tracer.methods names them (1 named the tracer's two "tracer")
MANIFEST_FORMAT = 2
# the boolean [n, m] masks of Scores that a trace directory keeps beside scores.npy
SCORE_MASKS = ("eligible", "vouched")


class Run:
    """Paths and safe loaders of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ------------------------------------------------------------------ paths
    @property
    def separate_dir(self) -> Path:
        return self.path / "separate"

    @property
    def manifest_path(self) -> Path:
        return self.separate_dir / "manifest.json"

    def attack_dir(self, name: str) -> Path:
        return self.path / "attack" / name

    def evidence_path(self, name: str) -> Path:
        return self.attack_dir(name) / "evidence.npz"

    def trace_dir(self, name: str) -> Path:
        return self.path / "trace" / name

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def results_path(self) -> Path:
        return self.path / "results.md"

    @property
    def innocent_dir(self) -> Path:
        return self.path / "innocent"

    def innocent_path(self, name: str) -> Path:
        return self.innocent_dir / name / "evidence.npz"

    @property
    def calibration_path(self) -> Path:
        return self.innocent_dir / "calibration.json"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    # ------------------------------------------------------------------ status
    def info(self) -> dict:
        return read_json(self.run_json) if self.run_json.is_file() else {"stages": {}}

    def stage_done(self, stage: str, key: str | None = None) -> bool:
        """Whether ``stage`` finished (for ``key``, when the stage runs per attack)."""
        entry = self.info()["stages"].get(stage if key is None else f"{stage}/{key}", {})
        return entry.get("status") == "done"

    def mark(self, stage: str, status: str, key: str | None = None, **extra: Any) -> None:
        info = self.info()
        info.setdefault("versions", versions())
        info["stages"][stage if key is None else f"{stage}/{key}"] = {
            "status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        write_json(self.run_json, info)

    # ------------------------------------------------------------------ artefacts
    @property
    def manifest(self) -> dict:
        m = read_json(self.manifest_path)
        if m.get("format") != MANIFEST_FORMAT:
            raise IntegrityError(f"{self.manifest_path}: manifest format {m.get('format')!r}, "
                                 f"this tracer reads {MANIFEST_FORMAT} (a run of an older tracer: "
                                 "separate it again)")
        return m

    @property
    def metrics(self) -> dict:
        return read_json(self.metrics_path)

    def attacks(self) -> list[str]:
        """Names of the attacks whose evidence is complete, sorted."""
        root = self.path / "attack"
        return sorted(p.parent.name for p in root.glob("*/evidence.npz")) if root.is_dir() else []

    def innocent_sets(self) -> list[str]:
        """Names of the innocent sets whose evidence is complete, sorted."""
        root = self.innocent_dir
        return sorted(p.parent.name for p in root.glob("*/evidence.npz")) if root.is_dir() else []

    def load_copies(self, device: torch.device | str = "cpu") -> CopySet:
        """Rebuild every copy from the manifest, through its method (tracer.methods); refuses
        tampered or mismatched checkpoints."""
        m = self.manifest
        name = m.get("method")
        if name not in METHODS:
            raise IntegrityError(f"{self.manifest_path}: unknown method {name!r}")
        copies = METHODS[name].load(Stored(m, self.separate_dir, self.manifest_path))
        return copies.to(device).eval()

    def load_evidence(self, name: str) -> Evidence:
        """The evidence of attack ``name``, checked against its sha256 and this run's copies."""
        meta = read_json(self.attack_dir(name) / "attack.json")
        m = self.manifest
        if meta.get("manifest_sha256") != sha256_file(self.manifest_path):
            made = meta.get("made_against") or {}
            diff = [f"{k} {made[k]!r} (this run: {v!r})" for k, v in manifest_summary(m).items()
                    if k in made and made[k] != v]
            raise IntegrityError(f"{self.evidence_path(name)}: made against other copies than "
                                 f"this run's: {', '.join(diff) or 'another manifest'}")
        return Evidence.load(self.evidence_path(name), shape=tuple(m["input"]["shape"]),
                             num_classes=m["input"]["num_classes"],
                             expected_sha256=meta.get("evidence_sha256"))

    def load_innocent(self, name: str) -> Evidence:
        """Innocent set ``name`` (source -1), checked like evidence."""
        m = self.manifest
        return Evidence.load(self.innocent_path(name), shape=tuple(m["input"]["shape"]),
                             num_classes=m["input"]["num_classes"])

    def save_trace_array(self, name: str, what: str, values: torch.Tensor) -> None:
        """``trace/<name>/<what>.npy``, float32 (``statistic``: DOL for the tracer)."""
        save_npy(self.trace_dir(name) / f"{what}.npy", values.numpy().astype(np.float32))

    def load_trace_array(self, name: str, what: str) -> torch.Tensor:
        return torch.from_numpy(load_npy(self.trace_dir(name) / f"{what}.npy"))

    def save_scores(self, name: str, scores: Scores) -> None:
        """The verdict scorer's scores: ``scores.npy`` and, where the scorer has them,
        ``eligible.npy`` and ``vouched.npy`` (the key test's passes)."""
        self.save_trace_array(name, "scores", scores.value)
        for mask in SCORE_MASKS:
            path = self.trace_dir(name) / f"{mask}.npy"
            if getattr(scores, mask) is not None:
                save_npy(path, getattr(scores, mask).numpy())
            else:
                path.unlink(missing_ok=True)

    def load_scores(self, name: str) -> Scores:
        value = self.load_trace_array(name, "scores")
        masks = {}
        for mask in SCORE_MASKS:
            path = self.trace_dir(name) / f"{mask}.npy"
            if path.is_file():
                arr = load_npy(path)
                if arr.dtype != np.bool_ or arr.shape != tuple(value.shape):
                    raise IntegrityError(f"{path}: expected {tuple(value.shape)} booleans, got "
                                         f"{arr.shape} {arr.dtype}")
                masks[mask] = torch.from_numpy(arr)
        return Scores(value, **masks)


def load_run(path: str | Path) -> Run:
    """A :class:`Run` over an existing run directory."""
    run = Run(path)
    if not run.path.is_dir():
        raise FileNotFoundError(f"no run directory at {run.path}")
    return run


def write_manifest(run: Run, *, method: str, dataset: str, inp: InputSpec, model: ModelSpec,
                   seed: int, accuracy: dict, files: list[str], **extra: Any) -> None:
    """The seller's record of the copies: how to rebuild them and each file's sha256.
    ``extra``: what the method adds (the tracer: its spec, alpha and the permutations)."""
    extra = {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in extra.items()}
    write_json(run.manifest_path, {
        "format": MANIFEST_FORMAT, "method": method, "dataset": dataset, "input": asdict(inp),
        "model": asdict(model), "seed": seed, **extra, "accuracy": accuracy,
        "files": {name: sha256_file(run.separate_dir / name) for name in files}})


def manifest_summary(manifest: dict) -> dict:
    """What evidence depends on of the copies it was made against (written beside it, so that a
    mismatch can be named)."""
    return {"method": manifest.get("method"), "dataset": manifest.get("dataset"),
            "arch": manifest.get("model", {}).get("arch")
            or manifest.get("model", {}).get("target"),
            "num_classes": manifest.get("input", {}).get("num_classes"),
            "num_copies": len(manifest.get("accuracy", {}).get("copy_clean_acc", [])),
            "alpha": manifest.get("alpha"), "keying": manifest.get("keying"),
            "classifiers": manifest.get("classifiers"),
            "seed": manifest.get("seed")}


def versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("tracer", "torch", "torchvision", "advertorch", "adversarial-robustness-toolbox",
                "hydra-core", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out
