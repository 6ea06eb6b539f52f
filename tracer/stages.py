"""The four stages, each reading and writing a run directory: separate -> attack -> trace -> report.

They take plain objects (data, specs, families), never a config, so notebooks and the CLI call the
same functions. A finished stage is skipped when run again; an interrupted one resumes.
"""
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
from tracer.abstention import (choose_threshold, detection_rate, false_accusation_rate, halves,
                               operating_curve, rate_upper_bound, wrong_accusation_rate)
from tracer.attacks.adaptive import AdaptiveSpec
from tracer.attacks.generate import AttackSpec, attack_copy, shared_pool
from tracer.baselines import IndependentCopies, InputMask, MaskedCopies, random_masks
from tracer.data import ImageData
from tracer.evaluation import plots
from tracer.evaluation.metrics import RunMetrics, perturbation_norms, trace_metrics
from tracer.evaluation.tables import results_markdown
from tracer.evidence import Evidence
from tracer.innocent import INNOCENT_SETS, InnocentSpec, innocent_evidence
from tracer.io import (atomic_torch_save, atomic_write_bytes, atomic_write_text, check_sha256,
                       load_weights, read_json, save_npy, sha256_file, tensor_sha256,
                       write_json)
from tracer.models.copies import CopyFamily, random_projections
from tracer.models.factory import (InputSpec, ModelSpec, TracerSpec, build_base, build_family,
                                   build_tracer)
from tracer.runs import CopySet, Run, copies_summary, versions, write_manifest
from tracer.separation.permutations import make_permutations
from tracer.separation.orthogonal import train_orthogonal_classifiers
from tracer.separation.train import (TRAINERS, ClassifierTraining, TracerTraining,
                                     predict_labels, train_classifier)
from tracer.tracing import Scored, named, observe, scored, verdict
from tracer.transforms import gaussian_noise, jpeg


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
    inp = _input_spec(data)
    if spec.reuse:
        _import_trained(Run(spec.reuse), run, data.name, inp, spec, seed)
    trainer = _Trainer(run, data, spec, inp, seed, device, progress)
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


def _input_spec(data: ImageData) -> InputSpec:
    mean, std = data.channel_stats()
    return InputSpec(list(data.shape), data.num_classes, mean, std)


@dataclass
class _Trainer:
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


def _build_tracer(t: _Trainer) -> tuple[CopySet, dict]:
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


def _orthogonal_classifiers(t: _Trainer) -> torch.nn.ModuleList:
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


def _build_naive(t: _Trainer) -> tuple[CopySet, dict]:
    # Copy 0 is trained exactly as the tracer method's C (same seed), so the two share it.
    members = [t.classifier(f"copy_{i}.pt", t.seed + i) for i in range(t.spec.num_copies)]
    return IndependentCopies(members, t.data.num_classes), {}


def _build_watermark(t: _Trainer) -> tuple[CopySet, dict]:
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
        "tracer_base.pt": same_data and other["tracer_training"] == wanted["tracer_training"]
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


def attack(family: CopySet, specs: list[AttackSpec], data: ImageData, out: str | Path, *,
           num_evidence: int, sources: list[int] | None = None, colluders: int = 1,
           adaptive: AdaptiveSpec | None = None, max_tries_factor: float = 3.0, seed: int = 0,
           shards: int = 1, shard: int | None = None, device: torch.device | str = "cpu",
           progress: bool = True) -> dict[str, Evidence]:
    """Run every attack from every source copy until ``num_evidence`` successful examples exist
    per attack (shared out evenly over the sources); writes ``attack/<name>/``.

    ``colluders`` > 1: consecutive sources form groups of that size, and each group attacks
    together (an example must fool all of its copies; the evidence names the group's first).
    ``adaptive``: every source is an attacker who knows tracer exists (attacks.adaptive).
    ``shards``: each source's images are cut into that many contiguous ranges, each with its
    share of the examples wanted and its own resume file, so that jobs can attack them apart:
    ``shard=j`` attacks range j only and writes no evidence (returns {}); a call without ``shard``
    attacks what is left and merges every range into the evidence, the same as if one job had
    done it all."""
    if shard is not None and not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    run = Run(out)
    sources = list(range(family.num_copies)) if sources is None else list(sources)
    groups = collusion_groups(sources, colluders)
    correct = predict_labels(family.outputs, data.x_test, device=device) == data.y_test[:, None]
    per_group = -(-num_evidence // len(groups))
    manifest_sha = sha256_file(run.manifest_path)
    results = {}
    for spec in specs:
        if run.stage_done("attack", spec.name):
            results[spec.name] = run.load_evidence(spec.name)
            continue
        start = time.time()
        parts, tried = [], 0
        for rank, group in enumerate(groups):
            pool = shared_pool(correct, len(groups), rank, seed)[:int(per_group * max_tries_factor)]
            tag = "-".join(map(str, group))
            for j, (images, wanted) in enumerate(shard_ranges(pool, per_group, shards)):
                if shard is not None and j != shard:
                    continue
                name = f"source_{tag}.npz" if shards == 1 else f"source_{tag}_shard{j}of{shards}.npz"
                ev, n_tried = attack_copy(family, group[0] if colluders == 1 else group, spec,
                                          data.x_test, data.y_test, images, wanted,
                                          device=device, progress=progress,
                                          seed=seed * 1000 + group[0] + 7919 * j,
                                          part=run.attack_dir(spec.name) / "parts" / name,
                                          adaptive=adaptive, train_images=data.x_train)
                parts.append(ev)
                tried += n_tried
        if shard is not None:
            continue
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
            "sources": sources, "groups": groups,
            "adaptive": asdict(adaptive) if adaptive else None, "evidence_sha256": sha256_file(path),
            "manifest_sha256": manifest_sha, "made_against": copies_summary(run.manifest),
            "seconds": seconds})
        run.mark("attack", "done", key=spec.name, seconds=seconds)
        results[spec.name] = evidence
    return results


def shard_ranges(pool: torch.Tensor, wanted: int, shards: int) -> list[tuple[torch.Tensor, int]]:
    """``pool`` cut into ``shards`` contiguous ranges, each with its share of ``wanted`` (the
    shares differ by at most one and sum to ``wanted``)."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    shares = [wanted // shards + (j < wanted % shards) for j in range(shards)]
    return list(zip(torch.tensor_split(pool, shards), shares))


def collusion_groups(sources: list[int], colluders: int) -> list[list[int]]:
    """Consecutive groups of ``colluders`` sources (one buyer each when 1)."""
    if colluders < 1 or len(sources) % colluders:
        raise ValueError(f"colluders={colluders} must divide the {len(sources)} sources "
                         f"{sources} into whole groups")
    return [sources[i:i + colluders] for i in range(0, len(sources), colluders)]


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


INDEPENDENT_SEED = 7919  # the independent classifier's seed offset: far from any copy's seed


def calibrate(copies: CopySet, data: ImageData, out: str | Path, *, spec: InnocentSpec,
              separation: SeparationSpec, scorer: str = "auto", seed: int = 0,
              device: torch.device | str = "cpu", progress: bool = True) -> dict:
    """Trace the innocent sets, choose the abstention threshold on their calibration halves,
    and measure false accusations (held-out halves) and detection (every attack's evidence,
    traced with the same scorer) at it; writes ``innocent/`` and returns
    ``innocent/calibration.json``'s content. A finished calibration is kept unless the scorer or
    the threshold's settings differ (the innocent sets are kept either way)."""
    run = Run(out)
    use = default_scorer(copies) if scorer == "auto" else scorer
    if run.stage_done("calibrate"):
        done = read_json(run.calibration_path)
        made_with = (done.get("scorer"), done.get("max_false_accusation"), done.get("confidence"),
                     list(done.get("innocent", {})))
        if made_with == (use, spec.max_false_accusation, spec.confidence, list(spec.sets)):
            return done
    innocent = {name: traced_evidence(copies, _innocent_set(run, data, name, spec, separation,
                                                            seed, device, progress),
                                      data.x_test, device=device).scores[use]
                for name in spec.sets}
    split = {name: halves(len(s), seed) for name, s in innocent.items()}
    threshold = choose_threshold({k: s[split[k][0]] for k, s in innocent.items()},
                                 spec.max_false_accusation, spec.confidence)
    attacks = {}
    for name in run.attacks():
        ev = run.load_evidence(name)
        if len(ev):
            attacks[name] = (traced_evidence(copies, ev, data.x_test, device=device).scores[use],
                             ev.source)
    result = {
        "scorer": use, "threshold": threshold, "max_false_accusation": spec.max_false_accusation,
        "confidence": spec.confidence,
        "innocent": {k: _innocent_rates(s, *split[k], threshold, spec.confidence)
                     for k, s in innocent.items()},
        "attacks": {k: {"detection_rate": detection_rate(s, src, threshold),
                        "wrong_accusation_rate": wrong_accusation_rate(s, src, threshold)}
                    for k, (s, src) in attacks.items()},
        "curve": operating_curve({k: s[split[k][1]] for k, s in innocent.items()}, attacks,
                                 _curve_thresholds(innocent, attacks))}
    write_json(run.calibration_path, result)
    run.mark("calibrate", "done")
    return result


def _innocent_rates(scores: torch.Tensor, calibration: torch.Tensor, held_out: torch.Tensor,
                    threshold: float | None, confidence: float | None) -> dict:
    """One innocent set's false accusations at ``threshold``: on its held-out half (with that
    rate's upper bound at ``confidence``, when given), its calibration half, and without
    abstention."""
    rate = false_accusation_rate(scores[held_out], threshold)
    rates = {"num": len(scores), "false_accusation_rate": rate,
             "false_accusation_rate_calibration": false_accusation_rate(scores[calibration],
                                                                        threshold),
             "false_accusation_rate_no_abstain": false_accusation_rate(scores, None)}
    if confidence is not None:
        n = len(held_out)
        rates["false_accusation_bound"] = rate_upper_bound(round(rate * n), n, confidence)
    return rates


def _curve_thresholds(innocent: dict, attacks: dict, points: int = 25) -> list[float]:
    tops = torch.cat([s.max(dim=1).values for s in innocent.values()]
                     + [s.max(dim=1).values for s, _ in attacks.values()])
    return torch.quantile(tops, torch.linspace(0, 1, points)).unique().tolist()


def _innocent_set(run: Run, data: ImageData, name: str, spec: InnocentSpec,
                  separation: SeparationSpec, seed: int, device, progress: bool) -> Evidence:
    """Innocent set ``name``, made once and kept in ``innocent/<name>/evidence.npz``."""
    path = run.innocent_path(name)
    if path.is_file():
        return Evidence.load(path, shape=tuple(data.shape), num_classes=data.num_classes,
                             allow_empty=True)
    g = torch.Generator().manual_seed(seed + 17)
    idx = torch.randperm(len(data.x_test), generator=g)[:spec.num]
    x, y = data.x_test[idx], data.y_test[idx]
    if name == "clean":
        ev = innocent_evidence(x, y, idx, name)
    elif name == "gaussian":
        ev = innocent_evidence(gaussian_noise(x, spec.gaussian_std, seed), y, idx, name)
    elif name == "jpeg":
        ev = innocent_evidence(jpeg(x, spec.jpeg_quality), y, idx, name)
    elif name == "independent":
        ev = _independent_adversarials(run, data, spec, separation, seed, device, progress)
    else:
        raise ValueError(f"unknown innocent set {name!r}; known: {INNOCENT_SETS}")
    ev.save(path)
    return ev


def _independent_adversarials(run: Run, data: ImageData, spec: InnocentSpec,
                              separation: SeparationSpec, seed: int, device,
                              progress: bool) -> Evidence:
    """Adversarial examples made on a classifier trained apart from every copy (another seed)."""
    if spec.attack is None:
        raise ValueError("the independent innocent set needs an attack (innocent.attack)")
    trainer = _Trainer(run, data, separation, _input_spec(data), seed, device, progress,
                       where=run.innocent_dir)
    other = IndependentCopies([trainer.classifier("independent.pt", seed + INDEPENDENT_SEED)],
                              data.num_classes).to(device).eval()
    correct = predict_labels(other.outputs, data.x_test, device=device) == data.y_test[:, None]
    pool = shared_pool(correct, 1, 0, seed + INDEPENDENT_SEED)[:3 * spec.num]
    ev, _ = attack_copy(other, 0, spec.attack, data.x_test, data.y_test, pool, spec.num,
                        device=device, progress=progress, seed=seed + INDEPENDENT_SEED,
                        part=run.innocent_dir / "independent" / "part.npz")
    return innocent_evidence(ev.x, ev.y_true, ev.clean_index, "independent")


def draw_attack_plots(run: Run, name: str, clean_images: torch.Tensor | None = None) -> list[Path]:
    """The per-attack pictures of a traced run, in ``plots/``."""
    ev = run.load_evidence(name)
    label = "DOL" if run.manifest.get("method", "tracer") == "tracer" else "baseline score"
    scores = run.load_trace_array(name, "scores")
    paths = [
        plots.statistic_histogram(run.load_trace_array(name, "statistic"), ev.source,
                                  run.plots_dir / f"{name}_statistic.png", label=label,
                                  title=f"{name}: source vs innocent copies"),
        plots.confusion_matrix(ev.source, named(scores), scores.shape[1],
                               run.plots_dir / f"{name}_confusion.png", title=name)]
    if clean_images is not None and len(ev):
        paths.append(plots.adversarial_examples(clean_images[ev.clean_index], ev.x,
                                                run.plots_dir / f"{name}_examples.png",
                                                title=name))
    return paths


def _theta(run: Run) -> float | None:
    """The angle L_trap trained the VAE tracer to (None for the residual tracer and baselines)."""
    spec = run.info()["stages"].get("separate", {}).get("spec", {})
    if spec.get("method", "tracer") != "tracer" or spec.get("tracer", {}).get("kind") != "vae":
        return None
    return spec.get("tracer_training", {}).get("theta_deg")


def report(out: str | Path, *, method: str = "tracer", quiet: bool = False,
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
    tracer_method = m.get("method", "tracer") == "tracer"
    metrics = RunMetrics(
        dataset=m["dataset"], model=m["model"]["arch"], method=method,
        num_copies=len(m["accuracy"]["copy_clean_acc"]), alpha=m.get("alpha"), seed=m["seed"],
        base_clean_acc=m["accuracy"].get("base_clean_acc"),
        copy_clean_acc=m["accuracy"]["copy_clean_acc"], attacks=attacks,
        scorer=next((a["scorer"] for a in attacks.values()), None), theta_deg=_theta(run),
        keying=m.get("keying", "permutation") if tracer_method else None,
        classifiers=m.get("classifiers", "shared") if tracer_method else None,
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
