"""The separation stage: train C and T_0 (or a baseline's copies) and build the copies a vendor
sells, by the method of ``tracer.methods``; writes ``separate/`` with the manifest every later
stage checks its inputs against."""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from tracer import distributed
from tracer.data import ImageData
from tracer.io import atomic_write_bytes, check_sha256
from tracer.methods import METHODS, TRAINED_TRACER_FIELDS, CopySet
from tracer.models.factory import InputSpec, ModelSpec
from tracer.models.predict import predict_labels
from tracer.runs import Run, write_manifest
from tracer.separation.spec import SeparationSpec
from tracer.separation.train import ClassifierTraining, TracerTraining
from tracer.separation.trainer import Trainer, input_spec


def separate(data: ImageData, spec: SeparationSpec, out: str | Path, *, seed: int = 0,
             device: torch.device | str = "cpu", progress: bool = True) -> CopySet:
    """Train and build ``spec.num_copies`` copies by ``spec.method``; write ``separate/`` with
    its manifest. A finished stage is loaded, an interrupted one resumes."""
    run = Run(out)
    if run.stage_done("separate"):
        return run.load_copies(device)
    start = time.time()
    inp = input_spec(data)
    if spec.reuse:
        _import_trained(Run(spec.reuse), run, data.name, inp, spec, seed)
    trainer = Trainer(run.separate_dir, data, spec, seed, device, progress)
    copies, extra = METHODS[spec.method].build(trainer)
    copies = copies.to(device).eval()
    y = data.y_test
    accuracy = {"copy_clean_acc": [_acc(col, y) for col in
                                   predict_labels(copies.outputs, data.x_test, device=device).T]}
    if trainer.base is not None:
        accuracy["base_clean_acc"] = _acc(predict_labels(trainer.base, data.x_test, device=device), y)
    distributed.barrier()
    if not distributed.is_main():
        return copies
    if trainer.adopted is not None:
        extra["adopted_classifier"] = trainer.adopted
    write_manifest(run, method=spec.method, dataset=data.name, inp=inp, model=spec.model,
                   seed=seed, accuracy=accuracy, files=trainer.files, **extra)
    resume = run.separate_dir / "resume"
    for f in resume.glob("*.pt") if resume.is_dir() else []:
        f.unlink()
    run.mark("separate", "done", seconds=round(time.time() - start, 1), spec=asdict(spec),
             processes=distributed.world_size())
    return copies


# C's training settings that runs recorded before the settings existed trained with
C_BEFORE_RECORDED = {"random_share": 0.0, "random_epsilon": 0.1, "adversarial_share": 0.0,
                     "adversarial_epsilon": 0.1, "adversarial_grid": 1}


def _c_training(recorded: dict) -> dict:
    """C's training as recorded, completed by ``C_BEFORE_RECORDED``; a perturbation's size is
    left out where its share is 0 (it changes nothing then)."""
    out = {**C_BEFORE_RECORDED, **recorded}
    for kind in ("random", "adversarial"):
        if not out[f"{kind}_share"]:
            out.pop(f"{kind}_epsilon")
    if not out["adversarial_share"]:
        out.pop("adversarial_grid")
    return out


def trained_as_recorded(run: Run, spec: SeparationSpec) -> SeparationSpec:
    """``spec`` with C's architecture and training as ``run``'s finished separate stage recorded
    them (completed by ``C_BEFORE_RECORDED``): what a later stage that trains a classifier "as C
    is" (the independent model of the innocent sets) must follow, whatever today's defaults
    say. ``spec`` itself where the run recorded no separate stage."""
    done = run.info()["stages"].get("separate", {})
    if done.get("status") != "done" or "spec" not in done:
        return spec
    recorded = done["spec"]
    try:
        model = ModelSpec(**recorded["model"])
        classifier = ClassifierTraining(**{**C_BEFORE_RECORDED, **recorded["classifier"]})
    except (KeyError, TypeError) as e:
        raise ValueError(f"{run.run_json}: the separate stage's record of C is not one this "
                         f"version reads ({e})") from e
    return replace(spec, model=model, classifier=classifier)


def _import_trained(src: Run, dst: Run, dataset: str, inp: InputSpec, spec: SeparationSpec,
                    seed: int) -> None:
    """Copy C and/or T_0 from finished run ``src`` when they were trained exactly as ``spec``
    would train them (same data, architecture, method, training spec and seed); sha256-checked."""
    m = src.manifest
    done = src.info()["stages"].get("separate", {})
    if done.get("status") != "done":
        raise ValueError(f"separation.reuse: {src.path} has no finished separate stage")
    other = done["spec"]
    same_data = m["dataset"] == dataset and m["input"] == asdict(inp) and m["seed"] == seed
    wanted = asdict(spec)
    checks = {
        "base.pt": same_data and other["model"] == wanted["model"]
        and _c_training(other["classifier"]) == _c_training(wanted["classifier"]),
        # a training setting added since src ran was at its default there
        "tracer_base.pt": same_data and other["method"] == spec.method
        and {**asdict(TracerTraining()), **other["tracer_training"]} == wanted["tracer_training"]
        and all(other["tracer"][k] == wanted["tracer"][k] for k in TRAINED_TRACER_FIELDS),
    }
    for name, ok in checks.items():
        target = dst.separate_dir / name
        if ok and not target.exists():
            check_sha256(src.separate_dir / name, m["files"][name])
            atomic_write_bytes(target, (src.separate_dir / name).read_bytes())
            hist = src.separate_dir / f"history_{Path(name).stem}.csv"
            if hist.is_file():
                atomic_write_bytes(dst.separate_dir / hist.name, hist.read_bytes())


def _acc(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean())
