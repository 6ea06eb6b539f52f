"""The separation stage: train C and T_0 (or a baseline's copies) and build the copies a vendor
sells; writes ``separate/`` with the manifest every later stage checks its inputs against."""
from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from tracer import distributed
from tracer.baselines import IndependentCopies, InputMask, MaskedCopies, random_masks
from tracer.data import ImageData
from tracer.io import (atomic_torch_save, atomic_write_bytes, atomic_write_text, check_sha256,
                       load_weights, save_npy, tensor_sha256)
from tracer.models.copies import random_projections
from tracer.models.factory import (InputSpec, ModelSpec, TracerSpec, build_base, build_family,
                                   build_tracer)
from tracer.runs import CopySet, Run, write_manifest
from tracer.separation.orthogonal import train_orthogonal_classifiers
from tracer.separation.permutations import make_permutations
from tracer.separation.train import (TRAINERS, ClassifierTraining, TracerTraining,
                                     predict_labels, train_classifier)


METHODS = ("tracer", "naive", "watermark")
KEYINGS = ("permutation", "projection")
CLASSIFIERS = ("shared", "orthogonal")


@dataclass
class SeparationSpec:
    """Everything the separation stage needs besides the data.

    ``method``: ``tracer`` (C + alpha * pi_i(T_0)), or a baseline: ``naive`` (C retrained from
    seed + i) or ``watermark`` (C fine-tuned behind a random input mask per copy).
    """
    model: ModelSpec = field(default_factory=ModelSpec)
    classifier: ClassifierTraining = field(default_factory=ClassifierTraining)
    tracer: TracerSpec = field(default_factory=TracerSpec)
    tracer_training: TracerTraining = field(default_factory=TracerTraining)
    num_copies: int = 5
    alpha: float = 0.15          # weight of the tracer in M_i = C + alpha * T_i
    max_agreement: int = 1       # permutations agree pairwise on at most this many positions
    keying: str = "permutation"  # how copies differ: permutation (the paper, <= K(K-1) copies) or
                                 # projection (residual tracer only: P_i R(x), any number)
    reuse: str | None = None     # a finished run whose C and T_0 to take where they would be
                                 # trained the same way (ablations over alpha, gain, copies)
    method: str = "tracer"
    classifiers: str = "shared"  # tracer: one C for every copy, or "orthogonal": copy i's own C_i
                                 # fine-tuned from C with the gradient-orthogonal loss
    orthogonal_weight: float = 1.0
    masked_fraction: float = 0.1  # watermark: share of input positions each copy masks
    finetune: ClassifierTraining = field(default_factory=lambda: ClassifierTraining(epochs=1))
                                 # watermark's copies and the orthogonal C_i start from C
    train_cache: str | None = None  # a directory of trained networks keyed by everything their
                                    # training depends on; None: no cache

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown separation method {self.method!r}; known: {METHODS}")
        if self.num_copies < 1:
            raise ValueError(f"num_copies must be at least 1, got {self.num_copies}")
        if self.classifiers not in CLASSIFIERS:
            raise ValueError(f"unknown classifiers {self.classifiers!r}; known: {CLASSIFIERS}")
        if self.keying not in KEYINGS:
            raise ValueError(f"unknown keying {self.keying!r}; known: {KEYINGS}")
        if self.keying == "projection" and self.tracer.kind != "residual":
            raise ValueError("keying=projection needs the residual tracer (separation=residual); "
                             f"this one is {self.tracer.kind!r}")


def separate(data: ImageData, spec: SeparationSpec, out: str | Path, *, seed: int = 0,
             device: torch.device | str = "cpu", progress: bool = True) -> CopySet:
    """Train and build ``spec.num_copies`` copies by ``spec.method``; write ``separate/`` with
    its manifest. A finished stage is loaded, an interrupted one resumes."""
    run = Run(out)
    if run.stage_done("separate"):
        return run.load_family(device)
    start = time.time()
    inp = input_spec(data)
    if spec.reuse:
        _import_trained(Run(spec.reuse), run, data.name, inp, spec, seed)
    trainer = Trainer(run, data, spec, inp, seed, device, progress)
    copies, extra = _BUILDERS[spec.method](trainer)
    copies = copies.to(device).eval()
    y = data.y_test
    accuracy = {"copy_clean_acc": [_acc(col, y) for col in
                                   predict_labels(copies.outputs, data.x_test, device=device).T]}
    if trainer.base is not None:
        accuracy["base_clean_acc"] = _acc(predict_labels(trainer.base, data.x_test, device=device), y)
    distributed.barrier()
    if not distributed.is_main():
        return copies
    write_manifest(run, method=spec.method, dataset=data.name, inp=inp, model=spec.model,
                   seed=seed, accuracy=accuracy, files=trainer.files, **extra)
    resume = run.separate_dir / "resume"
    for f in resume.glob("*.pt") if resume.is_dir() else []:
        f.unlink()
    run.mark("separate", "done", seconds=round(time.time() - start, 1), spec=asdict(spec),
             processes=distributed.world_size())
    return copies


def input_spec(data: ImageData) -> InputSpec:
    mean, std = data.channel_stats()
    return InputSpec(list(data.shape), data.num_classes, mean, std)


@dataclass
class Trainer:
    """Trains (or loads, from the run or the cache) the networks of one separation stage."""
    run: Run
    data: ImageData
    spec: SeparationSpec
    inp: InputSpec
    seed: int
    device: torch.device | str
    progress: bool
    files: list[str] = field(default_factory=list)
    base: torch.nn.Module | None = None
    where: Path | None = None   # where the networks go; None: the run's separate/

    @cached_property
    def data_sha256(self) -> str:
        """The training images and labels, hashed once for every cache key of this stage."""
        h = hashlib.sha256()
        for t in (self.data.x_train, self.data.y_train):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()

    def classifier(self, name: str, seed: int) -> torch.nn.Module:
        """A classifier C as ``spec`` trains it, initialised and shuffled with ``seed``."""
        d, spec = self.data, self.spec
        torch.manual_seed(seed)
        key = {"role": "classifier", "model": asdict(spec.model),
               "training": asdict(spec.classifier), "seed": seed}
        return self.trained(name, build_base(spec.model, self.inp), key, lambda m, ckpt:
                            train_classifier(m, d.x_train, d.y_train, spec.classifier, seed=seed,
                                             device=self.device, checkpoint=ckpt,
                                             progress=self.progress))

    def trained(self, name: str, module: torch.nn.Module, key: dict, train) -> torch.nn.Module:
        """``module`` loaded from ``separate/<name>`` if an earlier (interrupted) run finished
        it, else from the train cache, else trained by ``train(module, checkpoint)``."""
        sep = self.where or self.run.separate_dir
        path, history = sep / name, sep / f"history_{Path(name).stem}.csv"
        cache = None if self.spec.train_cache is None else _cache_path(
            self.spec.train_cache, {"data": self.data.name, "data_sha256": self.data_sha256,
                                    "input": asdict(self.inp), **key}, name)
        main = distributed.is_main()
        # under torchrun, every process must see the same files when it decides to train
        distributed.barrier()
        if cache is not None and cache.is_file():
            module.load_state_dict(load_weights(cache if not path.is_file() else path))
            if main and not path.is_file():
                atomic_write_bytes(path, cache.read_bytes())
        elif path.is_file():
            module.load_state_dict(load_weights(path))
        else:
            rows = train(module, sep / "resume" / name)
            if main:
                _write_history(history, rows)
                atomic_torch_save(module.state_dict(), path)
                if cache is not None:
                    atomic_write_bytes(cache, path.read_bytes())
        self.files.append(name)
        return module.eval()


def _build_tracer(t: Trainer) -> tuple[CopySet, dict]:
    spec, d = t.spec, t.data
    t.base = t.classifier("base.pt", t.seed)
    torch.manual_seed(t.seed + 1)
    train_tracer = TRAINERS[spec.tracer.kind]
    key = {"role": "tracer", "tracer": {k: asdict(spec.tracer)[k] for k in _TRAINED_ONLY},
           "training": asdict(spec.tracer_training), "seed": t.seed + 1}
    tracer = t.trained("tracer_base.pt", build_tracer(spec.tracer, t.inp, seed=t.seed), key,
                       lambda m, ckpt: train_tracer(m, d.x_train, spec.tracer_training,
                                                    seed=t.seed + 1, device=t.device,
                                                    checkpoint=ckpt, progress=t.progress))
    extra = {"tracer": asdict(spec.tracer), "alpha": spec.alpha, "keying": spec.keying}
    if spec.keying == "projection":
        keys = random_projections(spec.num_copies, d.num_classes, int(np.prod(d.shape)),
                                  seed=t.seed)
        extra.update(projection_seed=t.seed, projections_sha256=tensor_sha256(keys))
    else:
        keys = make_permutations(d.num_classes, spec.num_copies, seed=t.seed,
                                 max_agreement=spec.max_agreement)
        extra["permutations"] = keys
    classifiers = None
    if spec.classifiers == "orthogonal":
        classifiers = _orthogonal_classifiers(t)
        extra.update(classifiers="orthogonal", orthogonal_weight=spec.orthogonal_weight)
    return build_family(t.base, tracer.base_tracer, keys, spec.alpha, spec.tracer,
                        classifiers), extra


def _orthogonal_classifiers(t: Trainer) -> torch.nn.ModuleList:
    """Every copy's own C_i: C fine-tuned with the gradient-orthogonal loss (the paper's
    counter-measure to collusion)."""
    spec, d = t.spec, t.data
    start = torch.nn.ModuleList([copy.deepcopy(t.base) for _ in range(spec.num_copies)])
    key = {"role": "orthogonal", "model": asdict(spec.model), "base": asdict(spec.classifier),
           "training": asdict(spec.finetune), "weight": spec.orthogonal_weight,
           "copies": spec.num_copies, "seed": t.seed}
    return t.trained("classifiers.pt", start, key, lambda m, ckpt: train_orthogonal_classifiers(
        m, d.x_train, d.y_train, spec.finetune, spec.orthogonal_weight, seed=t.seed + 2,
        device=t.device, checkpoint=ckpt, progress=t.progress))


def _build_naive(t: Trainer) -> tuple[CopySet, dict]:
    # Copy 0 is trained exactly as the tracer method's C (same seed), so the two share it.
    members = [t.classifier(f"copy_{i}.pt", t.seed + i) for i in range(t.spec.num_copies)]
    return IndependentCopies(members, t.data.num_classes), {}


def _build_watermark(t: Trainer) -> tuple[CopySet, dict]:
    spec, d = t.spec, t.data
    t.base = t.classifier("base.pt", t.seed)
    keep = random_masks(spec.num_copies, tuple(d.shape), spec.masked_fraction, seed=t.seed)
    if distributed.is_main():
        save_npy(t.run.separate_dir / "masks.npy", keep.numpy().astype(np.float32))
    t.files.append("masks.npy")
    members = []
    for i in range(spec.num_copies):
        member = build_base(spec.model, t.inp)
        member.load_state_dict(t.base.state_dict())
        key = {"role": "masked", "model": asdict(spec.model), "base": asdict(spec.classifier),
               "training": asdict(spec.finetune), "seed": t.seed, "copy": i,
               "keep_sha256": hashlib.sha256(keep[i].numpy().tobytes()).hexdigest()}
        members.append(t.trained(f"copy_{i}.pt", member, key, lambda m, ckpt, i=i: train_classifier(
            InputMask(m, keep[i]), d.x_train, d.y_train, spec.finetune, seed=t.seed + 1 + i,
            device=t.device, checkpoint=ckpt, progress=t.progress)))
    return MaskedCopies(members, keep, d.num_classes), {"masked_fraction": spec.masked_fraction}


_BUILDERS = {"tracer": _build_tracer, "naive": _build_naive, "watermark": _build_watermark}


def _cache_path(cache_dir: str, key: dict, name: str) -> Path:
    """Where the train cache keeps the network ``key`` describes (its data, architecture,
    training and seed); the file name hashes the key and torch's version."""
    h = hashlib.sha256(json.dumps({"torch": torch.__version__, **key}, sort_keys=True).encode())
    return Path(cache_dir) / f"{Path(name).stem.rstrip('_0123456789')}-{h.hexdigest()[:32]}.pt"


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
        # a training setting added since src ran was at its default there
        "tracer_base.pt": same_data and {**asdict(TracerTraining()), **other["tracer_training"]}
        == wanted["tracer_training"]
        and all(other["tracer"][k] == wanted["tracer"][k] for k in _TRAINED_ONLY),
    }
    for name, ok in checks.items():
        target = dst.separate_dir / name
        if ok and not target.exists():
            check_sha256(src.separate_dir / name, m["files"][name])
            atomic_write_bytes(target, (src.separate_dir / name).read_bytes())
            hist = src.separate_dir / f"history_{Path(name).stem}.csv"
            if hist.is_file():
                atomic_write_bytes(dst.separate_dir / hist.name, hist.read_bytes())


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
