"""Trace innocent inputs that a run's calibration never saw, at the run's threshold.

    python scripts/unseen_innocent.py RUN [--images 2000]

Test images that no innocent set holds, under each corruption of
``tracer.evaluation.unseen.UNSEEN`` (blur, contrast, brightness, salt and pepper, uniform, sign
and stronger Gaussian noise, a mirror image, a shift, fewer grey levels, a lower resolution),
traced with the scorer and the threshold of the run's calibrate stage. Prints, as JSON, how
often a copy is named on each; the calibrate stage keeps the sets it saw within its target
(1% by default). Needs the run's data set, as its stages do.
"""
from __future__ import annotations

import argparse
import json

from omegaconf import OmegaConf

from tracer.abstention import stored_threshold
from tracer.config import to_spec
from tracer.evaluation.unseen import unseen_false_accusations, unseen_images
from tracer.io import read_json
from tracer.pipeline import load_data
from tracer.runs import load_run


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--images", type=int, default=2000, help="test images behind each corruption")
    args = p.parse_args(argv)
    if args.images < 1:
        raise SystemExit("--images must be at least 1")
    run = load_run(args.run)
    if not run.calibration_path.is_file():
        raise SystemExit(f"{run.path}: no innocent/calibration.json; run stage=calibrate first")
    calibration = read_json(run.calibration_path)
    spec = to_spec(OmegaConf.load(run.path / "config.yaml"))
    data = load_data(spec, download=False)
    idx = unseen_images(len(data.x_test), spec.innocent.num, args.images, spec.seed)
    threshold = stored_threshold(calibration["threshold"])
    rates = unseen_false_accusations(run.load_copies().eval(), data.x_test[idx],
                                     data.y_test[idx], idx, calibration["scorer"], threshold,
                                     spec.seed)
    result = {"run": str(run.path), "scorer": calibration["scorer"], "threshold": threshold,
              "images": len(idx), "target": calibration["max_false_accusation"],
              "false_accusation_rate": rates}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
