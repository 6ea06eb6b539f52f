"""The report stage: collect a run's files into ``metrics.json``, ``results.md`` and
``plots/``, always from the files, never from memory."""
from __future__ import annotations

from pathlib import Path

import torch

from tracer.evaluation import plots
from tracer.evaluation.metrics import RunMetrics
from tracer.evaluation.tables import results_markdown
from tracer.io import atomic_write_text, read_json, write_json
from tracer.methods import method
from tracer.runs import Run, versions
from tracer.tracing import named


def draw_attack_plots(run: Run, name: str, clean_images: torch.Tensor | None = None) -> list[Path]:
    """The per-attack pictures of a traced run, in ``plots/``."""
    ev = run.load_evidence(name)
    scores = run.load_scores(name)
    paths = [
        plots.statistic_histogram(run.load_trace_array(name, "statistic"), ev.source,
                                  run.plots_dir / f"{name}_statistic.png",
                                  label=method(run.manifest["method"]).statistic,
                                  title=f"{name}: source vs innocent copies"),
        plots.confusion_matrix(ev.source, named(scores), scores.num_candidates,
                               run.plots_dir / f"{name}_confusion.png", title=name)]
    if clean_images is not None and len(ev):
        paths.append(plots.adversarial_examples(clean_images[ev.clean_index], ev.x,
                                                run.plots_dir / f"{name}_examples.png",
                                                title=name))
    return paths


def _theta(run: Run) -> float | None:
    """The angle L_trap trained the VAE tracer to (None for the residual tracer and baselines)."""
    spec = run.info()["stages"].get("separate", {}).get("spec", {})
    if spec.get("method") != "paper":
        return None
    return spec.get("tracer_training", {}).get("theta_deg")


def report(out: str | Path, *, quiet: bool = False,
           clean_images: torch.Tensor | None = None) -> dict:
    """Collect the run's files into ``metrics.json``, ``results.md`` and ``plots/`` (per attack:
    source vs innocent statistic, confusion of verdict and source, and with ``clean_images``,
    examples with their perturbation magnified); returns the metrics."""
    run = Run(out)
    m = run.manifest
    calib = read_json(run.calibration_path) if run.calibration_path.is_file() else {}
    attacks = {}
    for name in run.attacks():
        trace_json = run.trace_dir(name) / "trace.json"
        if trace_json.is_file():
            attacks[name] = {**read_json(trace_json), **calib.get("attacks", {}).get(name, {})}
    metrics = RunMetrics(
        dataset=m["dataset"], model=m["model"].get("arch") or m["model"].get("target"),
        method=m["method"],
        num_copies=len(m["accuracy"]["copy_clean_acc"]), alpha=m.get("alpha"), seed=m["seed"],
        base_clean_acc=m["accuracy"].get("base_clean_acc"),
        copy_clean_acc=m["accuracy"]["copy_clean_acc"], attacks=attacks,
        scorer=next((a["scorer"] for a in attacks.values()), None), theta_deg=_theta(run),
        keying=m.get("keying"), classifiers=m.get("classifiers"),  # the tracer's; None: baseline
        abstain_threshold=calib.get("threshold"), innocent=calib.get("innocent", {}),
        versions=run.info().get("versions", versions())).to_json()
    write_json(run.metrics_path, metrics)
    table = results_markdown(metrics)
    atomic_write_text(run.results_path, table)
    for name in attacks:
        draw_attack_plots(run, name, clean_images)
    run.mark("report", "done")
    if not quiet:
        print(table)
    return metrics
