"""Hydra config -> plain typed objects. With pipeline.py, the only module that touches Hydra.

``compose(*overrides)`` gives notebooks and tests the same config the CLI gets;
``to_spec(cfg)`` turns it into a :class:`PipelineSpec` of dataclasses the library takes;
``build(node)`` instantiates a ``_target_`` only from an allow-list of packages.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from hydra import compose as _hydra_compose
from hydra import initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from tracer.attacks.adaptive import AdaptiveSpec
from tracer.attacks.generate import AttackSpec
from tracer.innocent import InnocentSpec
from tracer.models.factory import ModelSpec, TracerSpec
from tracer.separation.train import ClassifierTraining, TracerTraining
from tracer.stages import SeparationSpec

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Hydra 1.3 has no whitelist for _target_; this is ours, hard-coded, never read from config.
ALLOWED_TARGETS = ("tracer.", "torch.optim.", "advertorch.attacks.", "art.attacks.")


def compose(*overrides: str, config_name: str = "config", with_hydra: bool = False) -> DictConfig:
    """The pipeline's config with ``overrides`` (CLI syntax), without running anything;
    ``with_hydra`` keeps Hydra's own node (launcher, sweeper) in it."""
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
class EvidenceSpec:
    num: int = 200                     # successful examples per attack, over all sources
    sources: list[int] | None = None   # None: every copy is a source in turn
    colluders: int = 1                 # buyers per group attacking together
    max_tries_factor: float = 3.0
    shards: int = 1                    # contiguous image ranges per source, each its own unit
    shard: int | None = None           # attack this range only (a cluster job); None: all, merged


@dataclass
class PipelineSpec:
    data: DataSpec
    separation: SeparationSpec
    attacks: list[AttackSpec]
    evidence: EvidenceSpec
    innocent: InnocentSpec
    adaptive: AdaptiveSpec
    seed: int = 0
    device: str = "cpu"
    stage: str = "all"
    progress: bool = True
    method: str = "residual"
    scorer: str = "auto"


def _take(cls, node: Any, ignore: tuple[str, ...] = ()):
    """``cls(**node)``; a key that is neither a field of ``cls`` nor in ``ignore`` (keys meant for
    another consumer of the same node) is a typo, and an error."""
    d = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names - set(ignore)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {sorted(unknown)}; known: {sorted(names)}")
    return cls(**{k: v for k, v in d.items() if k in names})


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
        specs.append(AttackSpec(name=str(name), threat=a.threat, factory=factory,
                                budget=a.get("budget"), batch_size=a.get("batch_size", 16)))
    return specs


def to_spec(cfg: DictConfig) -> PipelineSpec:
    """The typed objects the library takes, from a composed config."""
    sources = cfg.evidence.sources
    s = cfg.separation
    tracer = s.get("tracer")  # baselines have no tracer section
    sep = SeparationSpec(
        model=_take(ModelSpec, cfg.model, ignore=("name", "train")),
        classifier=_take(ClassifierTraining, cfg.model.train),
        tracer=_take(TracerSpec, tracer, ignore=("train",)) if tracer else TracerSpec(),
        tracer_training=_take(TracerTraining, tracer.train) if tracer else TracerTraining(),
        num_copies=s.num_copies, alpha=s.get("alpha", 0.0),
        max_agreement=s.get("max_agreement", 1), keying=s.get("keying", "permutation"),
        reuse=s.get("reuse"),
        method=s.get("method", "tracer"), masked_fraction=s.get("masked_fraction", 0.1),
        classifiers=s.get("classifiers", "shared"),
        orthogonal_weight=s.get("orthogonal_weight", 1.0),
        finetune=_take(ClassifierTraining, s.finetune) if s.get("finetune") else
        ClassifierTraining(epochs=1), train_cache=s.get("train_cache"))
    return PipelineSpec(
        data=_data_spec(cfg),
        separation=sep, attacks=attack_specs(cfg.attack),
        innocent=_innocent_spec(cfg.get("innocent")),
        adaptive=_take(AdaptiveSpec, cfg.get("adaptive")),
        evidence=EvidenceSpec(num=cfg.evidence.num,
                              sources=None if sources in (None, "all") else list(sources),
                              colluders=cfg.evidence.get("colluders", 1),
                              max_tries_factor=cfg.evidence.max_tries_factor,
                              shards=cfg.evidence.get("shards", 1),
                              shard=cfg.evidence.get("shard")),
        seed=cfg.seed, device=resolve_device(cfg.device), stage=cfg.stage,
        progress=cfg.progress, method=cfg.separation.name, scorer=cfg.trace.scorer)


def _innocent_spec(node: DictConfig | None) -> InnocentSpec:
    """The innocent sets; ``node.attack`` is an attack config (one entry of the attack group)."""
    if node is None:
        return InnocentSpec(sets=[])
    spec = _take(InnocentSpec, node, ignore=("attack",))
    if "independent" in spec.sets:
        attacks = attack_specs(node.attack) if node.get("attack") else []
        if len(attacks) != 1:
            raise ValueError("innocent.attack must be one attack config (attack@innocent.attack="
                             "<name>); the independent innocent set is made with it")
        spec.attack = attacks[0]
    return spec


def _data_spec(cfg: DictConfig) -> DataSpec:
    spec = _take(DataSpec, cfg.dataset, ignore=("num_classes",))
    spec.cache_dir = cfg.paths.cache_dir
    return spec
