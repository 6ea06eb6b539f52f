"""Hydra config -> plain typed objects. With pipeline.py, the only module that touches Hydra.

``compose(*overrides)`` gives notebooks and tests the same config the CLI gets;
``to_spec(cfg)`` turns it into a :class:`PipelineSpec` of dataclasses the library takes, reading
every node strictly (a key no dataclass has is an error, and a key the config leaves out takes
the dataclass's default, which is the YAML's); ``build(node)`` instantiates a ``_target_`` only
from an allow-list of packages; ``reconcile`` puts a new command's overrides on top of the
config an existing run was made with, refusing what contradicts its finished stages.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from hydra import compose as _hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from tracer.attacks.adaptive import AdaptiveSpec
from tracer.attacks.generate import AttackSpec, EvidenceSpec
from tracer.innocent import InnocentSpec
from tracer.models.factory import ModelSpec, TracerSpec
from tracer.separation.spec import SeparationSpec
from tracer.separation.train import ClassifierTraining, TracerTraining

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Hydra 1.3 has no whitelist for _target_; this is ours, hard-coded, never read from config.
ALLOWED_TARGETS = ("tracer.", "torch.optim.", "advertorch.attacks.", "art.attacks.")


def compose(*overrides: str, config_name: str = "config", with_hydra: bool = False) -> DictConfig:
    """The pipeline's config with ``overrides`` (CLI syntax), without running anything;
    ``with_hydra`` keeps Hydra's own node (launcher, sweeper) in it. Inside a running Hydra app
    it composes through the app's own instance."""
    if GlobalHydra.instance().is_initialized():
        return _hydra_compose(config_name=config_name, overrides=list(overrides),
                              return_hydra_config=with_hydra)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return _hydra_compose(config_name=config_name, overrides=list(overrides),
                              return_hydra_config=with_hydra)


def check_targets(node: Any, where: str = "config") -> None:
    """Refuse any ``_target_`` in ``node`` (recursively) outside ALLOWED_TARGETS."""
    if isinstance(node, DictConfig):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(ALLOWED_TARGETS):
            raise ValueError(f"{where}: _target_ {target!r} is not allowed "
                             f"(allowed prefixes: {ALLOWED_TARGETS})")
        for key in node:
            check_targets(node[key], f"{where}.{key}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            check_targets(item, f"{where}[{i}]")


def build(node: DictConfig, where: str = "config") -> Any:
    """``hydra.utils.instantiate`` after :func:`check_targets`."""
    check_targets(node, where)
    return instantiate(node)


@dataclass
class DataSpec:
    name: str = "fashion_mnist"
    root: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    image_size: int | None = None
    download: bool = False
    cache_dir: str | None = None


@dataclass
class PipelineSpec:
    data: DataSpec = field(default_factory=DataSpec)
    separation: SeparationSpec = field(default_factory=SeparationSpec)
    evidence: EvidenceSpec = field(default_factory=EvidenceSpec)
    innocent: InnocentSpec = field(default_factory=InnocentSpec)
    seed: int = 0
    device: str = "cpu"
    stage: str = "all"
    progress: bool = True
    scorer: str = "auto"


def _take(cls, node: Any, *, ignore: tuple[str, ...] = (), **given: Any):
    """``cls(**node, **given)``, ``given`` taking the place of the node's keys of those names
    (nested nodes the caller reads itself). A key that is neither a field of ``cls`` nor in
    ``ignore`` (keys meant for another consumer of the same node) is a typo, and an error."""
    d = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names - set(ignore) - set(given)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {sorted(unknown)}; known: {sorted(names)}")
    return cls(**{k: v for k, v in d.items() if k in names and k not in given}, **given)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device} but CUDA is not available here")
    return device


def attack_specs(node: DictConfig) -> list[AttackSpec]:
    """One :class:`AttackSpec` per entry of the ``attack`` config group."""
    specs = []
    for name in node:
        a = node[name]
        factory = build(a.factory, f"attack.{name}.factory")
        specs.append(_take(AttackSpec, a, name=str(name), factory=factory))
    return specs


def separation_spec(cfg: DictConfig) -> SeparationSpec:
    """The separation node, with the model node's classifier (C is the model)."""
    s = cfg.separation
    tracer = s.get("tracer")   # baselines have no tracer section
    nested = {"tracer": _take(TracerSpec, tracer, ignore=("train",)) if tracer else TracerSpec(),
              "tracer_training": _take(TracerTraining, tracer.get("train")) if tracer
              else TracerTraining()}
    if s.get("finetune") is not None:
        nested["finetune"] = _take(ClassifierTraining, s.finetune)
    return _take(SeparationSpec, s, ignore=("name",),
                 model=_take(ModelSpec, cfg.model, ignore=("name", "train", "_target_"),
                             target=cfg.model.get("_target_")),
                 classifier=_take(ClassifierTraining, cfg.model.get("train")), **nested)


def to_spec(cfg: DictConfig) -> PipelineSpec:
    """The typed objects the library takes, from a composed config."""
    sources = cfg.evidence.get("sources")
    evidence = _take(EvidenceSpec, cfg.evidence, attacks=attack_specs(cfg.attack),
                     adaptive=_take(AdaptiveSpec, cfg.get("adaptive")),
                     sources=None if sources in (None, "all") else list(sources))
    return PipelineSpec(
        data=_take(DataSpec, cfg.dataset, cache_dir=cfg.paths.cache_dir),
        separation=separation_spec(cfg), evidence=evidence,
        innocent=_innocent_spec(cfg.get("innocent")),
        seed=cfg.seed, device=resolve_device(cfg.device), stage=cfg.stage,
        progress=cfg.progress, scorer=cfg.trace.scorer)


def _innocent_spec(node: DictConfig | None) -> InnocentSpec:
    """The innocent sets; ``node.attack`` holds attack configs (entries of the attack group),
    each of which makes one independent set."""
    if node is None:
        return InnocentSpec(sets=[])
    attacks = attack_specs(node.attack) if node.get("attack") else []
    spec = _take(InnocentSpec, node, ignore=("attack",), attacks=attacks)
    if "independent" in spec.sets and not attacks:
        raise ValueError("the independent innocent sets need an attack (attack@innocent.attack="
                         "[<name>, ...])")
    return spec


# ---------------------------------------------------------------- a stage on an existing run

class ConfigConflict(ValueError):
    """An override contradicts what an existing run's finished stages were made with; ``lines``
    names each conflicting key."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


# What each finished stage fixes, as key prefixes; the keys below them in _FREE change nothing
# that stage made (where files are, how a sweep is cut into jobs).
_FREE = ("separation.train_cache", "separation.reuse", "dataset.root", "dataset.download",
         "evidence.shard")
# What one command does, never taken from the run's config: a shard job's shard is not the merge's
_PER_COMMAND = ("stage", "evidence.shard")


def locked_keys(stages: dict) -> list[str]:
    """The config keys (prefixes) that ``stages`` (run.json's, name -> entry) were made with."""
    done = {k for k, v in stages.items() if v.get("status") == "done"}
    keys = ["seed", "dataset", "model", "separation"] if "separate" in done else []
    attacks = sorted(k.split("/", 1)[1] for k in done if k.startswith("attack/"))
    if attacks:
        keys += ["evidence", "adaptive", *(f"attack.{a}" for a in attacks)]
    if "calibrate" in done:   # the innocent sets are kept: what they were made of is fixed
        keys += ["innocent.attack", "innocent.gaussian_std", "innocent.jpeg_quality"]
    return keys


def reconcile(cfg: DictConfig, saved: DictConfig, locked: list[str],
              named: tuple[str, ...] = ()) -> DictConfig:
    """The config of a new command on an existing run: ``saved`` (the run's config.yaml) with
    what the command set on top. What it set: every key where ``cfg`` differs from the default
    config (``compose()``), and the ``named`` keys (those its ``key=value`` overrides name,
    even at their default). Raises :class:`ConfigConflict` where a key it set under a ``locked``
    prefix differs from ``saved``."""
    now, before, default = (_flat(c) for c in (cfg, saved, compose()))
    named_leaves = {k for k in now.keys() | before.keys()
                    for n in named if k == n or k.startswith(n + ".")}
    explicit = {k for k in now.keys() | default.keys()
                if now.get(k, _ABSENT) != default.get(k, _ABSENT)} | named_leaves
    explicit |= {k for k in now if _under(k, _PER_COMMAND)}
    merged = dict(before)
    for k in explicit:
        if k in now:
            merged[k] = now[k]
        else:
            merged.pop(k, None)
    conflicts = sorted(k for k in explicit if _under(k, locked) and not _under(k, _FREE)
                       and merged.get(k, _ABSENT) != before.get(k, _ABSENT))
    if conflicts:
        raise ConfigConflict([f"{k}: the run was made with {_show(before.get(k, _ABSENT))}, "
                              f"this command asks {_show(merged.get(k, _ABSENT))}"
                              for k in conflicts])
    return OmegaConf.create(_nested(merged))


_ABSENT = object()


def _show(value: Any) -> str:
    return "nothing" if value is _ABSENT else repr(value)


def _under(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _flat(cfg: DictConfig) -> dict[str, Any]:
    """Dotted key -> value of every leaf (lists and empty mappings are leaves)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def _nested(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
