"""What each attack's evidence in a run can hold of its source (tracer.evaluation.anatomy).

    python scripts/attack_anatomy.py RUN [--images 2000]

Prints JSON: how often a random attack-like perturbation at the attacks' budget fools the run's
C (on the first ``--images`` test images it labels), and per attack of the run: how far its
examples moved the source's tracer against C, how often the copy whose tracer moved most is the
source (with the clean image's help: an upper reading no scorer of the evidence alone is held
to), tracing accuracy (the run's scorer, top-1) and transfer by the queries each example took,
and, for a calibrated run, where detection is lost among the examples traced right (the key
test, then the threshold). Needs the run's data set, as its stages do.
"""
from __future__ import annotations

import argparse
import json

import torch
from omegaconf import OmegaConf

from tracer.abstention import stored_threshold
from tracer.config import to_spec
from tracer.evaluation.anatomy import (by_queries, fooled_by_chance, residual_seen, tracer_share,
                                       where_detection_is_lost)
from tracer.evaluation.metrics import transferable
from tracer.io import read_json
from tracer.models.common_directions import EPSILON
from tracer.pipeline import load_data
from tracer.runs import load_run
from tracer.stages import traced_evidence
from tracer.stages.tracing import scorer_name
from tracer.tracing import verdict


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--images", type=int, default=2000)
    args = p.parse_args(argv)
    run = load_run(args.run)
    spec = to_spec(OmegaConf.load(run.path / "config.yaml"))
    copies = run.load_copies().eval()
    if not hasattr(copies, "tracer_pre_activations"):
        raise SystemExit(f"{args.run}: its copies have no tracer (method "
                         f"{run.manifest.get('method')!r}); the anatomy reads the tracer's")
    data = load_data(spec, download=False)
    scorer = scorer_name(copies, spec.scorer)
    threshold = stored_threshold(read_json(run.calibration_path).get("threshold")) \
        if run.calibration_path.is_file() else None
    n = min(args.images, len(data.x_test))
    result = {"run": str(run.path), "scorer": scorer, "epsilon": EPSILON,
              "fooled_by_chance": fooled_by_chance(copies.base, data.x_test[:n],
                                                   data.y_test[:n], EPSILON, seed=spec.seed),
              "attacks": {}}
    for name in run.attacks():
        ev = run.load_evidence(name)
        if not len(ev):
            continue
        traced = traced_evidence(copies, ev)
        named, _ = verdict(traced.scores[scorer])
        clean = data.x_test[ev.clean_index]
        share = tracer_share(copies, ev, clean)
        own = share["tracer"][torch.arange(len(ev)), ev.source]
        result["attacks"][name] = {
            "num": len(ev),
            "source_tracer_median": float(own.median()),
            "other_tracers_median": float(share["tracer"].median()),
            "classifier_median": float(share["classifier"].median()),
            "oracle_traced": float((share["oracle"] == ev.source).float().mean()),
            "residual_seen_median": float(residual_seen(copies.tracer.noise, ev.x, clean).median())
            if hasattr(copies.tracer, "noise") else None,
            "by_queries": by_queries(ev.queries, named == ev.source,
                                     transferable(traced.labels, ev)),
            "detection_lost": None if threshold is None else
            where_detection_is_lost(traced.scores[scorer], ev.source, threshold)}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
