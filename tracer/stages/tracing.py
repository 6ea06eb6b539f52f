"""The trace stage: score every candidate copy on each attack's evidence and name the source;
writes ``trace/<name>/``."""
from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

import torch

from tracer.evaluation.metrics import trace_metrics, transferable
from tracer.evidence import Evidence
from tracer.io import atomic_write_text, read_json, write_json
from tracer.methods import CopySet
from tracer.runs import Run
from tracer.tracing import Scored, Scores, verdict


def trace(copies: CopySet, evidence: dict[str, Evidence], out: str | Path, *,
          scorer: str = "auto", clean_images: torch.Tensor | None = None,
          device: torch.device | str = "cpu") -> dict[str, dict]:
    """Score every candidate copy on each attack's evidence, name the source, and write
    ``trace/<name>/`` (scores, per-example verdicts, metrics).

    ``scorer``: one of ``copies.scorers``, or ``auto`` (their first, the method's default).
    ``clean_images``: the test images the evidence's ``clean_index`` points into; the watermark
    baseline needs them, the tracer does not.
    """
    run = Run(out)
    use = scorer_name(copies, scorer)
    results = {}
    for name, ev in evidence.items():
        if len(ev) == 0:
            continue
        traced = traced_evidence(copies, ev, clean_images, device=device)
        info = read_json(run.attack_dir(name) / "attack.json")
        metrics = asdict(trace_metrics(traced, ev, info["num_tried"], use,
                                       norms=info.get("perturbation"),
                                       groups=info.get("groups")))
        metrics["adaptive"] = (info.get("adaptive") or {}).get("kind", "none")
        scores = traced.scores[use]
        run.save_scores(name, scores)
        run.save_trace_array(name, "statistic", traced.statistic)
        _write_verdicts(run.trace_dir(name) / "verdicts.csv", scores, traced.labels, ev)
        write_json(run.trace_dir(name) / "trace.json", metrics)
        run.mark("trace", "done", key=name)
        results[name] = metrics
    return results


def scorer_name(copies: CopySet, scorer: str) -> str:
    """The scorer ``scorer`` means for ``copies``: ``auto`` is their method's default (the first
    of ``copies.scorers``); any other must be one of them."""
    if scorer == "auto":
        return copies.scorers[0]
    if scorer not in copies.scorers:
        raise ValueError(f"scorer {scorer!r} does not apply to {type(copies).__name__}; "
                         f"choose one of {list(copies.scorers)} or auto")
    return scorer


def traced_evidence(copies: CopySet, ev: Evidence, clean_images: torch.Tensor | None = None, *,
                    device: torch.device | str = "cpu") -> Scored:
    """Every candidate's label and every scorer's scores on evidence ``ev``."""
    clean = None
    if copies.needs_clean_images:
        if clean_images is None:
            raise ValueError(f"tracing {type(copies).__name__} needs the clean test images "
                             "(clean_images=data.x_test)")
        if len(ev) and int(ev.clean_index.max()) >= len(clean_images):
            raise ValueError(f"evidence points at clean image {int(ev.clean_index.max())} but "
                             f"only {len(clean_images)} were given")
        clean = clean_images[ev.clean_index]
    return copies.trace(ev.x, clean_images=clean, clean_labels=ev.y_true, device=device)


def _write_verdicts(path: Path, scores: Scores, labels: torch.Tensor, ev: Evidence) -> None:
    index, abstained = verdict(scores)
    named_ok = ~abstained & (index == ev.source)
    order = scores.order()
    rows = torch.arange(len(ev))
    top = scores.value[rows, order[:, 0]]
    runner_up = scores.value[rows, order[:, min(1, order.shape[1] - 1)]]
    eligible = scores.eligibility()[rows, order[:, 0]]
    vouched = None if scores.vouched is None else scores.vouched[rows, order[:, 0]]
    trans = transferable(labels, ev)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["evidence_id", "source", "verdict", "abstained", "top_score", "margin",
                "top_eligible", "top_beats_unsold_keys", "transferable", "correct"])
    for i in range(len(ev)):
        w.writerow([i, int(ev.source[i]), int(index[i]), int(abstained[i]),
                    f"{float(top[i]):.5f}", f"{float(top[i] - runner_up[i]):.5f}",
                    int(eligible[i]), "" if vouched is None else int(vouched[i]), int(trans[i]),
                    int(named_ok[i])])
    atomic_write_text(path, buf.getvalue())
