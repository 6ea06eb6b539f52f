"""``python -m tracer.pipeline [overrides]``: separate -> attack -> trace -> report (a Hydra app).

This module only wires stages together. ``stage=<name>`` with ``hydra.run.dir=<existing run>`` runs
one stage on an existing run; every stage skips what is already done and resumes what is not.
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from tracer import distributed, stages
from tracer.config import PipelineSpec, to_spec
from tracer.data import load_dataset
from tracer.io import atomic_write_text
from tracer.runs import Run

STAGES = ("all", "separate", "attack", "trace", "calibrate", "report")
log = logging.getLogger("tracer")


def run(cfg: DictConfig, out: str | Path) -> Run:
    """Run the pipeline described by ``cfg`` in run directory ``out`` (what the CLI does)."""
    if cfg.stage not in STAGES:
        raise ValueError(f"stage={cfg.stage!r}; choose one of {STAGES}")
    if cfg.evidence.get("shard") is not None and cfg.stage != "attack":
        raise ValueError("evidence.shard=j attacks one image range of an existing run: it needs "
                         "stage=attack (and hydra.run.dir=<run>, or in a multirun "
                         "hydra.sweep.dir=<run> hydra.sweep.subdir=.)")
    spec = to_spec(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if spec.stage in ("all", "separate") and distributed.is_main():
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    execute(spec, out)
    return Run(out)


def execute(spec: PipelineSpec, out: Path) -> None:
    stage, progress = spec.stage, spec.progress
    dev = distributed.init_from_env(spec.device)
    if distributed.world_size() > 1 and stage != "separate":
        raise ValueError(f"under torchrun ({distributed.world_size()} processes) only "
                         "stage=separate runs (training C and T_0); run the other stages in one "
                         "process on the same run directory")
    # Baselines trace against the clean images, so their trace stage needs the data too.
    needs_data = stage in ("all", "separate", "attack", "calibrate") or (
        stage == "trace" and spec.separation.method != "tracer")
    data = load_dataset(spec.data.name, spec.data.root, n_train=spec.data.n_train,
                        n_test=spec.data.n_test, seed=spec.seed, image_size=spec.data.image_size,
                        download=spec.data.download, cache_dir=spec.data.cache_dir) \
        if needs_data else None
    if stage in ("all", "separate"):
        log.info("separate: %s, building %d copies", spec.separation.method,
                 spec.separation.num_copies)
        family = stages.separate(data, spec.separation, out, seed=spec.seed, device=dev,
                                 progress=progress)
    else:
        family = Run(out).load_family(dev)
    if stage in ("all", "attack"):
        log.info("attack: %s", ", ".join(a.name for a in spec.attacks))
        evidence = stages.attack(family, spec.attacks, data, out, num_evidence=spec.evidence.num,
                                 sources=spec.evidence.sources,
                                 colluders=spec.evidence.colluders, adaptive=spec.adaptive,
                                 max_tries_factor=spec.evidence.max_tries_factor, seed=spec.seed,
                                 shards=spec.evidence.shards, shard=spec.evidence.shard,
                                 device=dev, progress=progress)
        if spec.evidence.shard is not None:
            log.info("attack: shard %d of %d done; merge with stage=attack evidence.shards=%d",
                     spec.evidence.shard, spec.evidence.shards, spec.evidence.shards)
            return
    else:
        run_ = Run(out)
        evidence = {name: run_.load_evidence(name) for name in run_.attacks()}
    if stage in ("all", "trace"):
        stages.trace(family, evidence, out, scorer=spec.scorer,
                     clean_images=data.x_test if data is not None else None, device=dev)
    if stage in ("all", "calibrate") and spec.innocent.sets:
        log.info("calibrate: innocent sets %s", ", ".join(spec.innocent.sets))
        stages.calibrate(family, data, out, spec=spec.innocent, separation=spec.separation,
                         scorer=spec.scorer, seed=spec.seed, device=dev, progress=progress)
    if stage in ("all", "trace", "calibrate", "report"):
        stages.report(out, method=spec.method,
                      clean_images=data.x_test if data is not None else None)


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
