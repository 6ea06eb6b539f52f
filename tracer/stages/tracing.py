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
from tracer.models.copies import CopyFamily
from tracer.runs import CopySet, Run
from tracer.tracing import Scored, named, observe, scored, verdict


def trace(copies: CopySet, evidence: dict[str, Evidence], out: str | Path, *,
          scorer: str = "auto", clean_images: torch.Tensor | None = None,
          device: torch.device | str = "cpu") -> dict[str, dict]:
    """Score every candidate copy on each attack's evidence, name the source, and write
    ``trace/<name>/`` (scores, per-example verdicts, metrics).

    ``scorer``: one the copies support, or ``auto`` (``default_scorer``). ``clean_images``: the
    test images the evidence's ``clean_index`` points into; the watermark baseline needs them,
    the tracer does not.
    """
    run = Run(out)
    results = {}
    for name, ev in evidence.items():
        if len(ev) == 0:
            continue
        traced = traced_evidence(copies, ev, clean_images, device=device)
        use = default_scorer(copies) if scorer == "auto" else scorer
        info = read_json(run.attack_dir(name) / "attack.json")
        metrics = asdict(trace_metrics(traced, ev, info["num_tried"], use,
                                       norms=info.get("perturbation"),
                                       groups=info.get("groups")))
        metrics["adaptive"] = (info.get("adaptive") or {}).get("kind", "none")
        scores = traced.scores[use]
        run.save_trace_array(name, "scores", scores)
        run.save_trace_array(name, "statistic", traced.statistic)
        _write_verdicts(run.trace_dir(name) / "verdicts.csv", scores, traced.labels, ev)
        write_json(run.trace_dir(name) / "trace.json", metrics)
        run.mark("trace", "done", key=name)
        results[name] = metrics
    return results


def default_scorer(copies: CopySet) -> str:
    """The rule ``scorer=auto`` means: ours for the tracer (debiased_disagree where the tracer is
    the residual one, else dol_disagree), a baseline's own for a baseline."""
    if not isinstance(copies, CopyFamily):
        return copies.scorers[0]
    return "debiased_disagree" if copies.has_residual else "dol_disagree"


def traced_evidence(copies: CopySet, ev: Evidence, clean_images: torch.Tensor | None = None, *,
                    device: torch.device | str = "cpu") -> Scored:
    """Every candidate's label and every scorer's scores on evidence ``ev``."""
    if isinstance(copies, CopyFamily):
        return scored(observe(copies, ev.x, clean_labels=ev.y_true, device=device))
    if clean_images is None:
        raise ValueError(f"tracing {type(copies).__name__} needs the clean test images "
                         "(clean_images=data.x_test)")
    if len(ev) and int(ev.clean_index.max()) >= len(clean_images):
        raise ValueError(f"evidence points at clean image {int(ev.clean_index.max())} but only "
                         f"{len(clean_images)} were given")
    return copies.trace(ev.x, clean_images[ev.clean_index], ev.y_true, device=device)


def _write_verdicts(path: Path, scores: torch.Tensor, labels: torch.Tensor, ev: Evidence) -> None:
    index, abstained = verdict(scores)
    correct = named(scores) == ev.source
    top2 = scores.topk(min(2, scores.shape[1]), dim=1).values
    margin = top2[:, 0] - top2[:, -1]
    trans = transferable(labels, ev)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["evidence_id", "source", "verdict", "abstained", "top_score", "margin",
                "transferable", "correct"])
    for i in range(len(ev)):
        w.writerow([i, int(ev.source[i]), int(index[i]), int(abstained[i]),
                    f"{float(top2[i, 0]):.5f}", f"{float(margin[i]):.5f}", int(trans[i]),
                    int(correct[i])])
    atomic_write_text(path, buf.getvalue())
