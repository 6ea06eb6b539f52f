"""``python -m tracer.pipeline [overrides]``: separate -> attack -> trace -> report (a Hydra app).

This module only wires stages together. ``stage=<name>`` with ``hydra.run.dir=<existing run>`` runs
one stage on an existing run, with the config that run was made with and the command's overrides
on top (an override that contradicts a finished stage is refused); every stage skips what is
already done and resumes what is not.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from tracer import distributed, runtime, stages
from tracer.config import ConfigConflict, PipelineSpec, locked_keys, reconcile, to_spec
from tracer.data import ImageData, load_dataset
from tracer.io import atomic_write_text
from tracer.methods import method
from tracer.runs import Run

STAGES = ("all", "separate", "attack", "trace", "calibrate", "report")
log = logging.getLogger("tracer")


def run(cfg: DictConfig, out: str | Path, named: tuple[str, ...] = ()) -> Run:
    """Run the pipeline described by ``cfg`` in run directory ``out`` (what the CLI does). On a
    run that already has a config.yaml, ``cfg``'s settings go on top of that config
    (``tracer.config.reconcile``; ``named``: keys the command set explicitly, even to their
    default) and a contradiction of a finished stage raises ``ConfigConflict``."""
    if cfg.stage not in STAGES:
        raise ValueError(f"stage={cfg.stage!r}; choose one of {STAGES}")
    runtime.keep_heap()
    runtime.exact_float32()
    if cfg.evidence.get("shard") is not None and cfg.stage != "attack":
        raise ValueError("evidence.shard=j attacks one image range of an existing run: it needs "
                         "stage=attack (and hydra.run.dir=<run>, or in a multirun "
                         "hydra.sweep.dir=<run> hydra.sweep.subdir=.)")
    out = Path(out)
    saved = out / "config.yaml"
    if saved.is_file():
        cfg = reconcile(cfg, OmegaConf.load(saved), locked_keys(Run(out).info()["stages"]),
                        named)
    spec = to_spec(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        atomic_write_text(saved, OmegaConf.to_yaml(cfg, resolve=True))
    execute(spec, out)
    return Run(out)


def execute(spec: PipelineSpec, out: Path) -> None:
    stage, progress = spec.stage, spec.progress
    dev = distributed.init_from_env(spec.device)
    if distributed.world_size() > 1 and stage != "separate":
        raise ValueError(f"under torchrun ({distributed.world_size()} processes) only "
                         "stage=separate runs (training C and T_0); run the other stages in one "
                         "process on the same run directory")
    # Some baselines trace against the clean images, so their trace stage needs the data too.
    needs_data = stage in ("all", "separate", "attack", "calibrate") or (
        stage == "trace" and method(spec.separation.method).needs_clean_images)
    data = load_data(spec) if needs_data else None
    if stage in ("all", "separate"):
        log.info("separate: %s, building %d copies", spec.separation.method,
                 spec.separation.num_copies)
        copies = stages.separate(data, spec.separation, out, seed=spec.seed, device=dev,
                                 progress=progress)
    else:
        copies = Run(out).load_copies(dev)
    if stage in ("all", "attack"):
        log.info("attack: %s", ", ".join(a.name for a in spec.evidence.attacks))
        evidence = stages.attack(copies, data, spec.evidence, out, seed=spec.seed, device=dev,
                                 progress=progress)
        if spec.evidence.shard is not None:
            log.info("attack: shard %d of %d done; merge with stage=attack evidence.shards=%d",
                     spec.evidence.shard, spec.evidence.shards, spec.evidence.shards)
            return
    else:
        run_ = Run(out)
        evidence = {name: run_.load_evidence(name) for name in run_.attacks()}
    clean_images = data.x_test if data is not None else None
    if stage in ("all", "trace"):
        stages.trace(copies, evidence, out, scorer=spec.scorer, clean_images=clean_images,
                     device=dev)
    if stage in ("all", "calibrate") and spec.innocent.sets:
        log.info("calibrate: innocent sets %s", ", ".join(spec.innocent.sets))
        stages.calibrate(copies, data, spec.innocent, out, separation=spec.separation,
                         scorer=spec.scorer, seed=spec.seed, device=dev, progress=progress)
    if stage in ("all", "trace", "calibrate", "report"):
        stages.report(out, clean_images=clean_images)


def load_data(spec: PipelineSpec, download: bool | None = None) -> ImageData:
    """The run's data set as every stage sees it (``download``: None, as the spec says)."""
    d = spec.data
    return load_dataset(d.name, d.root, n_train=d.n_train, n_test=d.n_test, seed=spec.seed,
                        image_size=d.image_size,
                        download=d.download if download is None else download,
                        cache_dir=d.cache_dir)


def _named_keys(overrides: list[str]) -> tuple[str, ...]:
    """The keys ``key=value`` overrides name (not config-group choices such as dataset=digits,
    which change what they change; nor hydra's own)."""
    keys = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if "=" in o and "." in key and not key.startswith("hydra.") and "@" not in key:
            keys.append(key)
        elif "=" in o and key in ("seed", "device", "stage", "progress"):
            keys.append(key)
    return tuple(keys)


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    try:
        run(cfg, hc.runtime.output_dir, named=_named_keys(list(hc.overrides.task)))
    except ConfigConflict as conflict:
        print(f"tracer: refusing stage={cfg.stage} on {hc.runtime.output_dir}: it contradicts "
              "what the run's finished stages were made with", file=sys.stderr)
        for line in conflict.lines:
            print(f"tracer: {line}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
