"""How much of its source each attack's evidence holds for a scorer fitted to the copies' readings
(tracer.evaluation.ceiling; docs/method.md section 18).

    python scripts/scorer_ceiling.py RUN [RUN ...] [--hidden 0] [--folds 5]

The runs need projection keys (the default). Nothing is written; per attack of every run it
prints one markdown row: top-1 of the run's default scorer, of a scorer fitted on every other
attack's evidence (in all the runs given: one it never saw), of one fitted on this attack's own
other examples alone, and of one fitted on them and every other example of the runs (both
cross-validated over ``--folds``). Where the last two stay below a figure, a rule on these
readings is unlikely to reach it.
"""
from __future__ import annotations

import argparse

import torch

from tracer.evaluation.ceiling import copy_readings, fit_scorer, held_out_top1
from tracer.evaluation.tables import markdown_table
from tracer.runs import load_run
from tracer.tracing import score


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--hidden", type=int, default=0, help="hidden units of the fitted scorer "
                   "(0: linear)")
    p.add_argument("--folds", type=int, default=5)
    args = p.parse_args(argv)
    cells = {}
    for path in args.runs:
        run = load_run(path)
        copies = run.load_copies().eval()
        for name in run.attacks():
            ev = run.load_evidence(name)
            if len(ev) < args.folds:
                continue
            default = score(copies.observe(ev.x), copies.scorers[0]).top()[0]
            cells[(path, name)] = (copy_readings(copies, ev.x), ev.source.long(),
                                   float((default == ev.source).float().mean()))
    rows = []
    for (path, name), (readings, sources, default) in cells.items():
        others = [v for k, v in cells.items() if k[1] != name]
        # every other example of the runs given may teach the fit, this one's never
        rest = [v for k, v in cells.items() if k != (path, name)]
        unseen = None
        if others:
            fitted = fit_scorer(torch.cat([o[0] for o in others]),
                                torch.cat([o[1] for o in others]), hidden=args.hidden)
            with torch.no_grad():
                unseen = float((fitted(readings).argmax(1) == sources).float().mean())
        also = (torch.cat([r[0] for r in rest]), torch.cat([r[1] for r in rest])) if rest \
            else None
        rows.append({"run": path, "attack": name, "n": len(sources), "default": default,
                     "fitted_unseen": unseen,
                     "fitted_alone": held_out_top1(readings, sources, folds=args.folds,
                                                   hidden=args.hidden),
                     "fitted_seen": held_out_top1(readings, sources, folds=args.folds,
                                                  also=also, hidden=args.hidden)})
    print(markdown_table(
        ["run", "attack", "examples", "default scorer", "fitted on the other attacks",
         "fitted on this one's other examples", "fitted on those and the other attacks"],
        [[r["run"], r["attack"], str(r["n"]), _pct(r["default"]), _pct(r["fitted_unseen"]),
          _pct(r["fitted_alone"]), _pct(r["fitted_seen"])] for r in rows]))
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    main()
