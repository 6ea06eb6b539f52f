"""How much a run's abstention threshold owes to its calibration/held-out split.

    python scripts/threshold_splits.py RUN [--splits 200] [--max-false-accusation F]
        [--confidence C | --confidence none]

Traces the run's innocent sets and attack evidence with the scorer its calibrate stage used, as
that stage does, then repeats the threshold choice over many seeded splits
(``tracer.abstention.split_stability``) and prints the result as JSON. The target and the
confidence are the calibrate stage's unless given (``none``: the rate seen).
"""
from __future__ import annotations

import argparse
import json

from tracer.abstention import split_stability
from tracer.io import read_json
from tracer.runs import load_run
from tracer.stages import traced_evidence


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--splits", type=int, default=200)
    p.add_argument("--max-false-accusation", type=float, default=None)
    p.add_argument("--confidence", default=None, help="a level in (0, 1), or none")
    args = p.parse_args(argv)
    run = load_run(args.run)
    if not run.calibration_path.is_file():
        raise SystemExit(f"{run.path}: no innocent/calibration.json; run stage=calibrate first")
    calibration = read_json(run.calibration_path)
    target = (calibration["max_false_accusation"] if args.max_false_accusation is None
              else args.max_false_accusation)
    confidence = (calibration.get("confidence") if args.confidence is None
                  else None if args.confidence.lower() == "none" else float(args.confidence))
    scorer, copies = calibration["scorer"], run.load_copies()

    def scores(ev):
        return traced_evidence(copies, ev).scores[scorer]

    innocent = {name: scores(run.load_innocent(name)) for name in calibration["innocent"]}
    evidence = {name: (scores(ev), ev.source)
                for name in run.attacks() if len(ev := run.load_evidence(name))}
    result = {"run": str(run.path), "scorer": scorer,
              **split_stability(innocent, evidence, target, confidence, args.splits)}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
