"""HopSkipJump speed: ours (batched over images and over the gradient estimate's directions)
against ART's implementation, side by side in one process.

    python benchmarks/bench_attack.py [--images 24] [--rounds 3] [--epsilon 1.0] [--query-batch 32]
                                      [--run RUN_DIR]

Same images (test images copy 0 classifies correctly), same copy, same settings (L2, 20
iterations, init_eval 100, max_eval 1000, 100 initial draws, 20,000 queries per image), same
success criterion: the example fools the copy and lies within L2 distance ``--epsilon`` of its
clean image (the attacker's perturbation budget). Three runs:

- ART: ``art.attacks.evasion.HopSkipJump`` through tracer's adapter, one image at a time, as ART
  attacks (its gradient-estimate queries in batches of ``--query-batch`` rows, as ours).
- ours, every iteration: the same algorithm batched; only the batching differs.
- ours, stopping each image at epsilon: what the pipeline runs with ``epsilon`` set; an image that
  meets the criterion is not refined further, and one whose boundary point meets it skips the
  iteration's gradient estimate.

Each attack first runs untimed on two images, so that none pays the process's cold start alone;
then ``--rounds`` rounds, each on ``--images`` fresh images, run the three in turn, so that a slow
spell of a shared machine falls on all three alike. Totals over the rounds are reported.

Copies: the default configuration's (fashion_mnist, C trained on 20,000 images), built once into
the train cache, or a finished run's with ``--run``. Prints successful examples per minute of
each and, on its last line, the ratio of ours (stopping at epsilon) to ART's, e.g. ``5.2x``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import tracer
from tracer.attacks import ArtAttack, BatchedHopSkipJump
from tracer.attacks.oracle import HardLabelOracle
from tracer.config import to_spec
from tracer.data import load_dataset
from tracer.runs import load_run

SETTINGS = dict(max_iter=20, max_eval=1000, init_eval=100, init_size=100)
BUDGET = 20_000


def default_run() -> Path:
    """The default configuration's copies (C on 20,000 images), separated once under the cache."""
    cfg = tracer.compose("dataset.n_train=20000", "stage=separate", "progress=false",
                         "separation.train_cache=${paths.cache_dir}/trained")
    out = Path(cfg.paths.cache_dir) / "bench" / "fashion_mnist_separate"
    tracer.run(cfg, out)
    return out


def attack_images(copy, data, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images (seeded draw) that the copy classifies correctly, and their labels."""
    order = torch.randperm(len(data.x_test), generator=torch.Generator().manual_seed(seed))
    x, y = data.x_test[order[:4 * n]], data.y_test[order[:4 * n]]
    with torch.no_grad():
        ok = (copy(x).argmax(1) == y).nonzero().flatten()[:n]
    return x[ok], y[ok]


def measure(attack, copy, x, y, epsilon: float) -> dict:
    """One attack on one round's images: seconds, successes, queries and L2 of fooled images."""
    start = time.perf_counter()
    x_adv = attack.perturb(x, y)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        fooled = copy(x_adv).argmax(1) != y
    l2 = (x_adv - x).flatten(1).norm(dim=1)
    return {"seconds": seconds, "success": int((fooled & (l2 <= epsilon)).sum()), "n": len(x),
            "queries": int(attack.last_queries.sum()), "l2_fooled": l2[fooled]}


def summary(name: str, rows: list[dict]) -> dict:
    seconds, success = sum(r["seconds"] for r in rows), sum(r["success"] for r in rows)
    n, queries = sum(r["n"] for r in rows), sum(r["queries"] for r in rows)
    l2 = torch.cat([r["l2_fooled"] for r in rows])
    row = {"success": success, "n": n, "per_minute": 60 * success / seconds}
    print(f"{name:28s} {success:3d}/{n} successful in {seconds:7.1f} s: "
          f"{row['per_minute']:7.1f} per minute, {queries / n:7.0f} queries per image, "
          f"median L2 {float(l2.median()) if len(l2) else float('nan'):.3f}")
    return row


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24, help="images per round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds on fresh images, the three attacks in turn in each")
    ap.add_argument("--epsilon", type=float, default=1.0, help="L2 perturbation budget")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--query-batch", type=int, default=32,
                    help="rows per model call, ART's batch_size and ours alike")
    ap.add_argument("--run", help="a run directory whose copy 0 to attack")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    np.random.seed(0)   # ART's adapter draws its seed from numpy's global generator
    run = load_run(args.run or default_run())
    spec = to_spec(tracer.compose(f"dataset={run.manifest['dataset']}"))
    data = load_dataset(spec.data.name, n_train=1000, n_test=None)
    copy = run.load_copies().copy(0).eval()
    x, y = attack_images(copy, data, args.images * args.rounds + 2)
    (warm_x, x), (warm_y, y) = (x[-2:], x[:-2]), (y[-2:], y[:-2])
    print(f"{len(x)} {data.name} images in {args.rounds} rounds, copy 0 of {run.path}, "
          f"{torch.get_num_threads()} threads, success: fools the copy within L2 {args.epsilon}")

    def oracle():
        return HardLabelOracle(copy, data.num_classes, budget=BUDGET)

    q = args.query_batch
    attacks = {
        "ART HopSkipJump": ArtAttack(oracle(), "HopSkipJump", norm=2, batch_size=q, **SETTINGS),
        "ours, every iteration": BatchedHopSkipJump(oracle(), query_batch=q, **SETTINGS),
        f"ours, stopping at L2 {args.epsilon}": BatchedHopSkipJump(
            oracle(), epsilon=args.epsilon, query_batch=q, **SETTINGS)}
    # Untimed, so that no attack pays the process's cold start (allocator, oneDNN kernels) alone.
    for attack in attacks.values():
        attack.perturb(warm_x, warm_y)
    # Rounds interleave the attacks, so that a slow spell of a shared machine hits each alike.
    rows = {name: [] for name in attacks}
    for r in range(args.rounds):
        part = slice(r * args.images, (r + 1) * args.images)
        for name, attack in attacks.items():
            rows[name].append(measure(attack, copy, x[part], y[part], args.epsilon))
    art, every, stop = (summary(name, rows[name]) for name in attacks)
    print(f"batching alone: {every['per_minute'] / art['per_minute']:.1f}x; success "
          f"{art['success']}/{art['n']} (ART), {every['success']}/{every['n']}, "
          f"{stop['success']}/{stop['n']} (ours)")
    ratio = stop["per_minute"] / art["per_minute"]
    print(f"{ratio:.1f}x")
    return ratio


if __name__ == "__main__":
    main()
