"""Candidate label-free scorers for deep (white-box) evidence, read off a finished run (issue 16).

    python scripts/explore_scorers.py RUN_DIR

The run must use permutation keys and the residual tracer, and hold a calibrate stage (innocent
sets, e.g. clean, gaussian, jpeg, independent_hsja). Nothing is written: for each candidate rule it prints one
markdown row per attack of the run: top-1 accuracy (no abstention), and, at the threshold chosen
as the calibrate stage chooses it (every innocent set's calibration half at most 1% at 95%
confidence), detection and wrong accusations, and the innocent sets' held-out false accusations.

With z = P r / |r| (r: the debiased residual R(x) - R(D(x))) and, for copy j, a_j its label,
b_j its runner-up, c C's label, pi_j its key:

- ``pair_disagree``: z[pi_j(a_j)] - z[pi_j(b_j)] over sqrt 2, eligible where a_j != c (the
  default, ``debiased_disagree``);
- ``pair_disagree_null``: the same, eligible also only where copy j's pair is the best of all
  K(K-1) ordered pairs of P's rows (a random-key test: no unsold key explains r better);
- ``up``: z[pi_j(a_j)] (the row the copy's label rose on; no eligibility);
- ``c_up`` / ``c_down``: +-z[pi_j(c)] (the row of C's label, which the copy's own tracer did not
  choose: no selection bias; up where the attack moved C too, down where it moved only the copy);
- ``pair_or_up``: ``pair_disagree`` where some copy disagrees with C, else ``up``;
- ``pair_plus_up``: (sqrt 2 pair + up) / sqrt 3, every copy eligible.
"""
from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf

from tracer.abstention import choose_threshold, halves
from tracer.runs import load_run
from tracer.seeding import derived_seed
from tracer.tracing import Scores, named



@torch.no_grad()
def reading(copies, x: torch.Tensor, batch: int = 512) -> dict[str, torch.Tensor]:
    """What every rule reads, per example: z [n, K], C's label [n], copy labels and runner-ups
    [n, m]."""
    cols: dict[str, list[torch.Tensor]] = {"z": [], "c": [], "a": [], "b": []}
    for s in range(0, len(x), batch):
        xb = x[s:s + batch]
        _, deb = copies.tracer.features(xb, debiased=True)
        unit = deb / deb.norm(dim=1, keepdim=True).clamp_min(1e-12)
        cols["z"].append(copies.tracer.readout(unit))
        cols["c"].append(copies.base_outputs(xb)[:, 0].argmax(1))
        top2 = copies.outputs(xb).topk(2, dim=-1).indices
        cols["a"].append(top2[..., 0])
        cols["b"].append(top2[..., 1])
    return {k: torch.cat(v) for k, v in cols.items()}


def rules(f: dict[str, torch.Tensor], perms: torch.Tensor) -> dict[str, Scores]:
    z, a, b = f["z"], f["a"], f["b"]
    m = perms.shape[0]
    c = f["c"].view(-1, 1).expand(-1, m)
    copy = torch.arange(m).unsqueeze(0)

    def row(labels):
        return z.gather(1, perms[copy, labels])

    pair = (row(a) - row(b)) / 2 ** 0.5
    disagree = a != c
    pairs = ((z.unsqueeze(2) - z.unsqueeze(1)) / 2 ** 0.5).flatten(1)        # [n, K*K]
    best_pair = (pairs.unsqueeze(1) > pair.unsqueeze(2) + 1e-6).sum(2) == 0  # [n, m]
    some = disagree.any(dim=1, keepdim=True)
    return {
        "pair_disagree": Scores(pair, disagree),
        "pair_disagree_null": Scores(pair, disagree & best_pair),
        "up": Scores(row(a)),
        "c_up": Scores(row(c)),
        "c_down": Scores(-row(c)),
        "pair_or_up": Scores(torch.where(some, pair, row(a)), disagree | ~some),
        "pair_plus_up": Scores((2 ** 0.5 * pair + row(a)) / 3 ** 0.5),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    run = load_run(args.run)
    copies = run.load_copies()
    perms = getattr(copies, "permutations", None)
    if perms is None or not hasattr(copies.tracer, "debiased_residual"):
        raise SystemExit(f"{args.run}: needs permutation keys and the residual tracer")
    attacks = {n: run.load_evidence(n) for n in run.attacks()}
    innocent = {n: run.load_innocent(n) for n in run.innocent_sets()}
    read = {n: rules(reading(copies, e.x), perms) for n, e in {**attacks, **innocent}.items()}
    seed = int(OmegaConf.load(run.path / "config.yaml").seed)   # the calibrate stage's halves
    split = {n: halves(len(innocent[n]), derived_seed(seed, "innocent_halves")) for n in innocent}
    print("| rule | threshold | " + " | ".join(f"{n}: top-1 / detected / wrong" for n in attacks)
          + " | " + " | ".join(f"{n} held out" for n in innocent) + " |")
    for rule in read[next(iter(attacks))]:
        thr = choose_threshold({n: read[n][rule].select(split[n][0]) for n in innocent}, 0.01,
                               0.95)
        cells = []
        for n, ev in attacks.items():
            s = read[n][rule]
            top, verdict = s.top()[0], named(s, thr)
            cells.append(f"{(top == ev.source).float().mean():.1%} / "
                         f"{(verdict == ev.source).float().mean():.1%} / "
                         f"{((verdict >= 0) & (verdict != ev.source)).float().mean():.1%}")
        for n in innocent:
            held = split[n][1]
            cells.append(f"{(named(read[n][rule], thr)[held] >= 0).float().mean():.1%}")
        print(f"| `{rule}` | {thr if thr is None else round(thr, 3)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
