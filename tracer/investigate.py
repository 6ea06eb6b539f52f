"""Investigate an incident: name the copy each suspicious image file came from, or none.

Files are PNG or JPEG images (8-bit grey or RGB, converted to the run's channels) or .npy / .npz
arrays in [0, 1] of the run's image shape. Each is traced by the run's copies with the scorer and
the abstention threshold of the run's calibrate stage; the verdict's confidence comes from score
densities fitted on the run's own evidence (tracer.confidence). Files are read as data only
(``numpy.load(allow_pickle=False)``, PIL decoding), never unpickled.

Files the investigator knows come from one buyer can also be named together: a buyer rarely
makes one adversarial example, and a verdict on several reads what one example holds too little
of (score-based attacks: docs/method.md sections 12 and 18), held to the threshold the calibrate
stage chose for groups and to the same key test.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

import tracer
from tracer.abstention import stored_threshold
from tracer.confidence import fit_densities
from tracer.io import read_json, sha256_file
from tracer.runs import Run
from tracer.tracing import Scores, named

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")


class BadInput(ValueError):
    """A file or run that cannot be investigated; the message names it and the problem."""


@dataclass
class Finding:
    """One file's verdict: the copy named (None: no match), its score, the confidence, and every
    candidate's score, best first."""
    file: str
    sha256: str
    named: int | None
    score: float
    confidence: float | None
    candidates: list[dict] = field(default_factory=list)
    reason: str = ""


@dataclass
class GroupFinding:
    """The verdict on files known to come from one buyer, tested together: the group size whose
    calibrated threshold they were held to, that threshold, the copy named (None: no match), its
    mean score, and every candidate's, best first."""
    files: list[str]
    sha256s: list[str]
    group_size: int
    threshold: float | None
    named: int | None
    score: float
    candidates: list[dict] = field(default_factory=list)
    reason: str = ""


def read_image(path: Path, shape: tuple[int, int, int]) -> Tensor:
    """The image in ``path`` as [C, H, W] float32 in [0, 1], in the run's ``shape``."""
    c, h, w = shape
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(path) as img:
                img.load()
                if img.mode not in ("L", "RGB"):
                    raise BadInput(f"{path}: mode {img.mode}; 8-bit grey (L) or RGB expected")
                img = img.convert("L" if c == 1 else "RGB")
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise BadInput(f"{path}: not a readable image ({err})") from None
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    elif suffix in ARRAY_SUFFIXES:
        try:
            loaded = np.load(path, allow_pickle=False)
            if suffix == ".npz":
                with loaded:
                    if len(loaded.files) != 1:
                        raise BadInput(f"{path}: {len(loaded.files)} arrays; one expected")
                    arr = loaded[loaded.files[0]]
            else:
                arr = loaded
        except BadInput:
            raise
        except (ValueError, OSError, EOFError) as err:
            raise BadInput(f"{path}: not a readable array ({err})") from None
        if not np.issubdtype(arr.dtype, np.floating):
            raise BadInput(f"{path}: dtype {arr.dtype}; floats in [0, 1] expected")
        arr = arr.astype(np.float32)
        if arr.ndim == 2 and c == 1:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[0] != c:
            raise BadInput(f"{path}: shape {tuple(arr.shape)}; the run's images are {shape} "
                           "(channels first)")
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise BadInput(f"{path}: values outside [0, 1]")
    else:
        raise BadInput(f"{path}: unknown kind {suffix!r}; PNG, JPEG, .npy or .npz expected")
    if arr.shape != (c, h, w):
        raise BadInput(f"{path}: size {arr.shape[2]}x{arr.shape[1]} with {arr.shape[0]} "
                       f"channel(s); the run's images are {w}x{h} with {c}")
    return torch.from_numpy(np.ascontiguousarray(arr))


class Investigator:
    """A run's copies, scorer, threshold and confidence model, loaded once for many files."""

    def __init__(self, run: Run):
        if not run.calibration_path.is_file():
            raise BadInput(f"{run.path}: no calibration (run its calibrate stage first): "
                           "without a threshold tracer cannot abstain")
        self.run = run
        self.calibration = read_json(run.calibration_path)
        self.scorer = self.calibration["scorer"]
        # null: no score bound, but a verdict still needs a nameable top (tracer.tracing.verdict)
        self.threshold = self.calibration["threshold"]
        self.copies = run.load_copies()
        self.shape = tuple(run.manifest["input"]["shape"])
        self._densities = self._fit()

    def _fit(self):
        parts = [(self._scores(ev.x, ev.y_true), ev.source)
                 for ev in (self.run.load_evidence(n) for n in self.run.attacks()) if len(ev)]
        if not parts:
            return None
        value = torch.cat([s.value for s, _ in parts])
        elig = None if parts[0][0].eligible is None else torch.cat([s.eligible for s, _ in parts])
        return fit_densities(Scores(value, elig), torch.cat([src for _, src in parts]))

    def _scores(self, x: Tensor, labels: Tensor | None) -> Scores:
        """The calibrated scorer's scores on images ``x`` (``labels``: their clean labels, known
        for the run's evidence, not for an image file)."""
        try:
            scored = self.copies.trace(x, clean_labels=labels)
        except ValueError as err:   # a baseline that needs the clean image or label
            raise BadInput(f"{self.run.path}: {err}") from None
        if self.scorer not in scored.scores:
            raise BadInput(f"{self.run.path}: the calibrated scorer {self.scorer!r} needs the "
                           "clean label, which an image file does not give")
        return scored.scores[self.scorer]

    def investigate(self, path: Path) -> Finding:
        x = read_image(path, self.shape).unsqueeze(0)
        scores = self._scores(x, None)
        verdict, cands, reason = _ranked(scores, self.threshold)
        confidence = None
        if verdict >= 0 and self._densities is not None:
            confidence = float(self._densities.posterior(scores)[0, verdict])
        return Finding(str(path), sha256_file(path), None if verdict < 0 else verdict,
                       cands[0]["score"], confidence, cands, reason)

    def group_threshold(self, k: int) -> tuple[int, float | None]:
        """The group size whose calibrated threshold ``k`` files from one buyer are held to, and
        that threshold (null: no score bound): the largest calibrated size up to k, since a
        mean over more examples varies less and an innocent group reaches a given threshold
        less often."""
        stored = self.calibration.get("group_thresholds") or {}
        sizes = sorted(int(size) for size in stored)
        usable = [size for size in sizes if size <= k]
        if not usable:
            held = f"groups of {', '.join(map(str, sizes))}" if sizes else "no group size (a " \
                "calibration made before groups were; run the calibrate stage again)"
            raise BadInput(f"{k} file(s) from one buyer: {self.run.path}'s calibration holds "
                           f"thresholds for {held}; name fewer files one by one")
        return usable[-1], stored[str(usable[-1])]

    def investigate_together(self, paths: list[Path]) -> GroupFinding:
        """Files known to come from one buyer, named together (``Scores.groups``: each copy's
        mean score, the key test on the mean rank evidence, eligible where it was on at least
        half of them) at the threshold calibrated for groups (:meth:`group_threshold`)."""
        size, threshold = self.group_threshold(len(paths))
        x = torch.stack([read_image(p, self.shape) for p in paths])
        scores = self._scores(x, None).mean()
        verdict, cands, reason = _ranked(scores, threshold)
        return GroupFinding([str(p) for p in paths], [sha256_file(p) for p in paths], size,
                            threshold, None if verdict < 0 else verdict, cands[0]["score"],
                            cands, reason)

    def header(self) -> dict:
        return {"run": str(self.run.path), "manifest_sha256": sha256_file(self.run.manifest_path),
                "tracer_version": tracer.__version__, "scorer": self.scorer,
                "threshold": self.threshold,
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def describe(f: Finding, threshold: float | None) -> str:
    """One file's verdict as a line for the terminal."""
    nxt = _next_two(f.candidates)
    thr = "none" if threshold is None else f"{threshold:.4f}"
    if f.named is None:
        return f"{f.file}: no match ({f.reason}; top copy {f.candidates[0]['copy']} score " \
               f"{f.score:.4f}, threshold {thr}; next: {nxt})"
    conf = "n/a" if f.confidence is None else f"{f.confidence:.1%}"
    return (f"{f.file}: copy {f.named} (score {f.score:.4f}, threshold {thr}, confidence {conf}; "
            f"next: {nxt})")


def describe_together(g: GroupFinding) -> str:
    """A group verdict as a line for the terminal."""
    thr = "none" if g.threshold is None else f"{g.threshold:.4f}"
    head = f"{len(g.files)} files together (threshold of groups of {g.group_size}: {thr})"
    nxt = _next_two(g.candidates)
    if g.named is None:
        return f"{head}: no match ({g.reason}; top copy {g.candidates[0]['copy']} score " \
               f"{g.score:.4f}; next: {nxt})"
    return f"{head}: copy {g.named} (score {g.score:.4f}; next: {nxt})"


def _next_two(candidates: list[dict]) -> str:
    """The runners-up after the top candidate, as a describe line lists them."""
    return ", ".join(f"copy {c['copy']} {c['score']:.4f}" for c in candidates[1:3])


def _ranked(scores: Scores, threshold: float | None) -> tuple[int, list[dict], str]:
    """The verdict on the first (or only) row of ``scores`` at a threshold as the calibration
    stores it (-1: none), every candidate best first, and why tracer abstained ("" where it
    named one)."""
    order = scores.order()[0]
    verdict = int(named(scores, stored_threshold(threshold))[0])
    elig = scores.eligibility()[0]
    cands = [{"copy": int(i), "score": float(scores.value[0, i]), "eligible": bool(elig[i])}
             for i in order]
    if scores.vouched is not None:
        for c in cands:
            c["beats_unsold_keys"] = bool(scores.vouched[0, c["copy"]])
    top = cands[0]
    reason = ""
    if verdict < 0:
        tied = scores.top()[3][0]
        reason = ("tie at the top" if tied else "no eligible candidate" if not top["eligible"]
                  else "an unsold key reads the evidence as well (key test)"
                  if not top.get("beats_unsold_keys", True) else "below the threshold")
    return verdict, cands, reason
