"""The four stages, each reading and writing a run directory: separate -> attack -> trace -> report.

They take plain objects (data, specs, families), never a config, so notebooks and the CLI call the
same functions. A finished stage is skipped when run again; an interrupted one resumes.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tracer.attacks.generate import AttackSpec, attack_copy, shared_pool
from tracer.data import ImageData
from tracer.evaluation.metrics import RunMetrics, perturbation_norms, trace_metrics
from tracer.evaluation.tables import results_markdown
from tracer.evidence import Evidence
from tracer.io import (atomic_torch_save, atomic_write_bytes, atomic_write_text, check_sha256,
                       load_weights, read_json, sha256_file, write_json)
from tracer.models.copies import CopyFamily
from tracer.models.factory import (InputSpec, ModelSpec, TracerSpec, build_base, build_family,
                                   build_tracer)
from tracer.runs import Run, versions, write_manifest
from tracer.separation.permutations import make_permutations
from tracer.separation.train import (TRAINERS, ClassifierTraining, TracerTraining,
                                     predict_labels, train_classifier)
from tracer.tracing import named, observe, score, verdict


@dataclass
class SeparationSpec:
    """Everything the separation stage needs besides the data."""
    model: ModelSpec = field(default_factory=ModelSpec)
    classifier: ClassifierTraining = field(default_factory=ClassifierTraining)
    tracer: TracerSpec = field(default_factory=TracerSpec)
    tracer_training: TracerTraining = field(default_factory=TracerTraining)
    num_copies: int = 5
    alpha: float = 0.15          # weight of the tracer in M_i = C + alpha * T_i
    max_agreement: int = 1       # permutations agree pairwise on at most this many positions
    reuse: str | None = None     # a finished run whose C and T_0 to take where they would be
                                 # trained the same way (ablations over alpha, gain, copies)


def separate(data: ImageData, spec: SeparationSpec, out: str | Path, *, seed: int = 0,
             device: torch.device | str = "cpu", progress: bool = True) -> CopyFamily:
    """Train C and T_0, build ``spec.num_copies`` copies, write ``separate/`` with its manifest."""
    run = Run(out)
    if run.stage_done("separate"):
        return run.load_family(device)
    start = time.time()
    mean, std = data.channel_stats()
    inp = InputSpec(list(data.shape), data.num_classes, mean, std)
    sep = run.separate_dir
    resume = sep / "resume"
    if spec.reuse:
        _import_trained(Run(spec.reuse), run, data.name, inp, spec, seed)
    torch.manual_seed(seed)
    base = _trained(sep / "base.pt", build_base(spec.model, inp), lambda m: train_classifier(
        m, data.x_train, data.y_train, spec.classifier, seed=seed, device=device,
        checkpoint=resume / "base.pt", progress=progress), sep / "history_base.csv")
    torch.manual_seed(seed + 1)
    train_tracer = TRAINERS[spec.tracer.kind]
    tracer = _trained(sep / "tracer_base.pt", build_tracer(spec.tracer, inp, seed=seed),
                      lambda m: train_tracer(m, data.x_train, spec.tracer_training, seed=seed + 1,
                                             device=device, checkpoint=resume / "tracer_base.pt",
                                             progress=progress), sep / "history_tracer.csv")
    perms = make_permutations(data.num_classes, spec.num_copies, seed=seed,
                              max_agreement=spec.max_agreement)
    family = build_family(base, tracer.base_tracer, perms, spec.alpha, spec.tracer)
    family = family.to(device).eval()
    y = data.y_test
    accuracy = {
        "base_clean_acc": _acc(predict_labels(base, data.x_test, device=device), y),
        "copy_clean_acc": [_acc(col, y) for col in
                           predict_labels(family.outputs, data.x_test, device=device).T],
    }
    write_manifest(run, dataset=data.name, inp=inp, model=spec.model, tracer=spec.tracer,
                   alpha=spec.alpha, permutations=perms, seed=seed, accuracy=accuracy)
    for f in resume.glob("*.pt") if resume.is_dir() else []:
        f.unlink()
    run.mark("separate", "done", seconds=round(time.time() - start, 1), spec=asdict(spec))
    return family


_TRAINED_ONLY = ("kind", "width", "depth")  # of TracerSpec; gain and output norm act after training


def _import_trained(src: Run, dst: Run, dataset: str, inp: InputSpec, spec: SeparationSpec,
                    seed: int) -> None:
    """Copy C and/or T_0 from finished run ``src`` when they were trained exactly as ``spec``
    would train them (same data, architecture, training spec and seed); sha256-checked."""
    m = src.manifest
    done = src.info()["stages"].get("separate", {})
    if done.get("status") != "done":
        raise ValueError(f"separation.reuse: {src.path} has no finished separate stage")
    other = done["spec"]
    same_data = m["dataset"] == dataset and m["input"] == asdict(inp) and m["seed"] == seed
    wanted = asdict(spec)
    checks = {
        "base.pt": same_data and other["model"] == wanted["model"]
        and other["classifier"] == wanted["classifier"],
        "tracer_base.pt": same_data and other["tracer_training"] == wanted["tracer_training"]
        and all(other["tracer"][k] == wanted["tracer"][k] for k in _TRAINED_ONLY),
    }
    for name, ok in checks.items():
        target = dst.separate_dir / name
        if ok and not target.exists():
            check_sha256(src.separate_dir / name, m["files"][name])
            atomic_write_bytes(target, (src.separate_dir / name).read_bytes())
            hist = src.separate_dir / f"history_{'base' if name == 'base.pt' else 'tracer'}.csv"
            if hist.is_file():
                atomic_write_bytes(dst.separate_dir / hist.name, hist.read_bytes())


def _trained(path: Path, module: torch.nn.Module, train, history_path: Path) -> torch.nn.Module:
    """Load ``module`` from ``path`` if an earlier (interrupted) run finished it, else train it."""
    if path.is_file():
        module.load_state_dict(load_weights(path))
    else:
        history = train(module)
        atomic_torch_save(module.state_dict(), path)
        _write_history(history_path, history)
    return module.eval()


def _write_history(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _acc(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean())


def attack(family: CopyFamily, specs: list[AttackSpec], data: ImageData, out: str | Path, *,
           num_evidence: int, sources: list[int] | None = None, max_tries_factor: float = 3.0,
           seed: int = 0, device: torch.device | str = "cpu",
           progress: bool = True) -> dict[str, Evidence]:
    """Run every attack from every source copy until ``num_evidence`` successful examples exist
    per attack (shared out evenly over the sources); writes ``attack/<name>/``."""
    run = Run(out)
    sources = list(range(family.num_copies)) if sources is None else list(sources)
    correct = predict_labels(family.outputs, data.x_test, device=device) == data.y_test[:, None]
    per_source = -(-num_evidence // len(sources))
    manifest_sha = sha256_file(run.manifest_path)
    results = {}
    for spec in specs:
        if run.stage_done("attack", spec.name):
            results[spec.name] = run.load_evidence(spec.name)
            continue
        start = time.time()
        parts, tried = [], 0
        for rank, source in enumerate(sources):
            pool = shared_pool(correct, len(sources), rank, seed)[:int(per_source * max_tries_factor)]
            ev, n_tried = attack_copy(family, source, spec, data.x_test, data.y_test, pool,
                                      per_source, device=device, progress=progress,
                                      part=run.attack_dir(spec.name) / "parts" / f"source_{source}.npz",
                                      seed=seed * 1000 + source)
            parts.append(ev)
            tried += n_tried
        evidence = Evidence.concat(parts)
        evidence.params = {k: v for k, v in evidence.params.items() if k != "tried"}
        path = run.evidence_path(spec.name)
        evidence.save(path)
        seconds = round(time.time() - start, 1)
        write_json(run.attack_dir(spec.name) / "attack.json", {
            "attack": evidence.attack, "name": spec.name, "threat": spec.threat,
            "budget": spec.budget, "num_evidence": len(evidence), "num_tried": tried,
            "success_rate": len(evidence) / tried if tried else None,
            "mean_queries": float(evidence.queries.float().mean()) if len(evidence) else None,
            "perturbation": perturbation_norms(evidence.x, data.x_test[evidence.clean_index]),
            "sources": sources, "evidence_sha256": sha256_file(path),
            "manifest_sha256": manifest_sha, "seconds": seconds})
        run.mark("attack", "done", key=spec.name, seconds=seconds)
        results[spec.name] = evidence
    return results


def trace(family: CopyFamily, evidence: dict[str, Evidence], out: str | Path, *,
          scorer: str = "dol", device: torch.device | str = "cpu") -> dict[str, dict]:
    """Score every candidate copy on each attack's evidence, name the source, and write
    ``trace/<name>/`` (scores, per-example verdicts, metrics)."""
    run = Run(out)
    results = {}
    for name, ev in evidence.items():
        if len(ev) == 0:
            continue
        obs = observe(family, ev.x, clean_labels=ev.y_true, device=device)
        scores = score(obs, scorer)
        info = read_json(run.attack_dir(name) / "attack.json")
        metrics = asdict(trace_metrics(obs, ev, info["num_tried"], scorer,
                                       norms=info.get("perturbation")))
        run.save_scores(name, scores)
        _write_verdicts(run.trace_dir(name) / "verdicts.csv", scores, obs.labels, ev)
        write_json(run.trace_dir(name) / "trace.json", metrics)
        run.mark("trace", "done", key=name)
        results[name] = metrics
    return results


def _write_verdicts(path: Path, scores: torch.Tensor, labels: torch.Tensor, ev: Evidence) -> None:
    from tracer.evaluation.metrics import transferable
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


def report(out: str | Path, *, method: str = "tracer", quiet: bool = False) -> dict:
    """Collect the run's files into ``metrics.json`` and ``results.md``; returns the metrics."""
    run = Run(out)
    m = run.manifest
    attacks = {}
    for name in run.attacks():
        trace_json = run.trace_dir(name) / "trace.json"
        if trace_json.is_file():
            attacks[name] = read_json(trace_json)
    metrics = RunMetrics(
        dataset=m["dataset"], model=m["model"]["arch"], method=method,
        num_copies=len(m["permutations"]), alpha=m["alpha"], seed=m["seed"],
        base_clean_acc=m["accuracy"]["base_clean_acc"],
        copy_clean_acc=m["accuracy"]["copy_clean_acc"], attacks=attacks,
        scorer=next((a["scorer"] for a in attacks.values()), None),
        versions=run.info().get("versions", versions())).to_json()
    write_json(run.metrics_path, metrics)
    table = results_markdown(metrics)
    atomic_write_text(run.results_path, table)
    run.mark("report", "done")
    if not quiet:
        print(table)
    return metrics
