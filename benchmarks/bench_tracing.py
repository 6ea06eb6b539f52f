"""Tracing speed at many candidates: one shared pass against a per-candidate loop, side by side.

    python benchmarks/bench_tracing.py [--candidates 1000] [--evidence 256] [--run RUN_DIR]

Shared (``TracerCopies.observe``): C and R run once per evidence batch and every candidate is a
projection of R(x) (projection keys, ``separation.keying=projection``), so the cost is almost flat
in the number of candidates. The loop scores one candidate at a time, as each copy would be run
on its own: C and its tracer once per candidate. Both give every candidate's DOL and label; the
script checks they agree. Rates are evidence x candidate scores per second; the loop's is
measured on ``--loop-candidates`` of the candidates (its cost is linear in them by construction).
Networks: the default config's architectures, untrained (speed does not depend on the weights),
or a finished run's copies with ``--run``. The last line is the ratio, e.g. ``412.7x``.
"""
from __future__ import annotations

import argparse
import time

import torch

from tracer.config import compose, to_spec
from tracer.models import (InputSpec, ResidualTracer, build_base, build_copies,
                           random_projections)
from tracer.runs import load_run
from tracer.tracing import dol_from_outputs


def default_copies(candidates: int, seed: int = 0):
    """``candidates`` projection-keyed copies of the default config's C and T_0 on 1x28x28."""
    spec = to_spec(compose()).separation
    torch.manual_seed(seed)
    inp = InputSpec([1, 28, 28], 10, [0.5], [0.25])
    keys = random_projections(candidates, 10, 28 * 28, seed=seed)
    t = spec.tracer
    tracer = ResidualTracer(10, 1, 28, width=t.width, depth=t.depth, gain=t.gain, seed=seed)
    return build_copies(build_base(spec.model, inp), tracer, keys, spec.alpha, t).eval()


@torch.no_grad()
def per_candidate(copies, x: torch.Tensor,
                  candidates: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """DOL and label of each candidate in turn, running C and the candidate's tracer for it."""
    dols, labels = [], []
    for i in candidates:
        t = torch.tanh(copies.copy_tracer_pre_activation(x, i))
        out = copies.norm(copies.base(x)) + copies.alpha * t
        dols.append(dol_from_outputs(out.unsqueeze(1), t.unsqueeze(1))[:, 0])
        labels.append(out.argmax(-1))
    return torch.stack(dols, 1), torch.stack(labels, 1)


def timed(fn, repeats: int):
    """(result, best seconds of ``repeats`` calls)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--evidence", type=int, default=256)
    ap.add_argument("--loop-candidates", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run", help="a run directory whose copies to use instead")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.run:
        run = load_run(args.run)
        copies, shape = run.load_copies(), run.manifest["input"]["shape"]
    else:
        copies, shape = default_copies(args.candidates), [1, 28, 28]
    m = copies.num_copies
    x = torch.rand((args.evidence, *shape), generator=torch.Generator().manual_seed(0))
    subset = torch.randperm(m, generator=torch.Generator().manual_seed(1))[:args.loop_candidates]
    subset = sorted(subset.tolist())

    obs, shared_s = timed(lambda: copies.observe(x, batch_size=args.evidence), args.repeats)
    (dol, labels), loop_s = timed(lambda: per_candidate(copies, x, subset), args.repeats)
    if not (torch.allclose(obs.dol[:, subset], dol, atol=1e-4)
            and torch.equal(obs.labels[:, subset], labels)):
        raise SystemExit("shared and per-candidate scores disagree")
    shared_rate = args.evidence * m / shared_s
    loop_rate = args.evidence * len(subset) / loop_s
    print(f"candidates {m}, evidence {args.evidence}, {torch.get_num_threads()} threads")
    print(f"shared pass:   {shared_rate:14,.0f} scores/s ({shared_s:.3f} s for all {m} candidates)")
    print(f"per candidate: {loop_rate:14,.0f} scores/s ({loop_s:.3f} s for {len(subset)} "
          f"candidates, {loop_s / len(subset) * m:.1f} s for all {m})")
    ratio = shared_rate / loop_rate
    print(f"{ratio:.1f}x")
    return ratio


if __name__ == "__main__":
    main()
