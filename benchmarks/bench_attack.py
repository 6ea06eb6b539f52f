"""Black-box attack speed: ours (batched over images and queries) against ART's, side by side
in one process, at equal success and, for the L2 attacks, equal median L2.

    python benchmarks/bench_attack.py [--attacks hsja boundary square] [--images 12] [--rounds 2]
                                      [--epsilon 1.0] [--run RUN_DIR] [--device cpu]
                                      [--override attack.boundary.factory.max_iter=700 ...]

For each attack, on the same images (test images copy 0 classifies correctly) of the same copy:

- ART: ``art.attacks.evasion.HopSkipJump`` / ``BoundaryAttack`` / ``SquareAttack`` through
  tracer's adapter, one image at a time as ART attacks, at the settings tracer used to run them
  with (``ART_SETTINGS``).
- ours: ``attack=[hsja]`` / ``attack=[boundary]`` / ``attack=[square]`` exactly as
  ``configs/attack/`` builds them for the pipeline, so the figure is the speed of what
  ``make run`` (and its calibration's independent Square set) runs.

Success: the example fools the copy within L2 ``--epsilon`` of its clean image (Square: within
its own Linf budget, which both implementations keep by construction). L2 is compared on
the images both attacks fooled, as the median of ours / ART's per image (paired: the images' own
spread cancels). A speed ratio counts only where ours is as good on both, within ``TOLERANCE``
(the attacks' own randomness on a few dozen images): success >= (1 - TOLERANCE) x ART's and,
for the L2 attacks, the paired L2 ratio <= 1 + TOLERANCE. A faster attack that stops at bigger
perturbations has not done the same work, and its ratio is printed as void.

Each attack first runs untimed on two images, so that none pays the process's cold start alone;
then ``--rounds`` rounds, each on ``--images`` fresh images, run ART and ours in turn, so that a
slow spell of a shared machine falls on both alike. The last line holds one ratio per attack,
e.g. ``hsja 1.3x boundary 5.6x square 9.0x``.

Copies: the default configuration's (fashion_mnist, C trained on 20,000 images), built once into
the train cache, or a finished run's with ``--run``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import tracer
from tracer import runtime
from tracer.attacks import ArtAttack
from tracer.attacks.art_adapter import ART_ATTACKS
from tracer.config import resolve_device, to_spec
from tracer.data import load_dataset
from tracer.runs import load_run

BUDGET = 20_000
TOLERANCE = 0.05
# ART's attacks as tracer ran them before its own (the settings of docs/method.md's figures)
ART_SETTINGS = {
    "hsja": ("HopSkipJump", dict(norm=2, max_iter=20, max_eval=1000, init_eval=100,
                                 init_size=100)),
    "boundary": ("BoundaryAttack", dict(max_iter=500, num_trial=25, sample_size=20,
                                        init_size=100, delta=0.01, epsilon=0.01)),
    "square": ("SquareAttack", dict(norm="inf", eps=0.1, max_iter=2000, nb_restarts=1)),
}
L2_ATTACKS = ("hsja", "boundary")   # compared at equal L2 too; Square keeps its Linf budget


def default_run(device: str) -> Path:
    """The default configuration's copies (C on 20,000 images), separated once under the cache."""
    cfg = tracer.compose("dataset.n_train=20000", "stage=separate", "progress=false",
                         "separation.train_cache=${paths.cache_dir}/trained", f"device={device}")
    out = Path(cfg.paths.cache_dir) / "bench" / "fashion_mnist_separate"
    tracer.run(cfg, out)
    return out


def attack_images(copy, data, n: int, device: str,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images (seeded draw) that the copy classifies correctly, and their labels, on
    ``device``."""
    order = torch.randperm(len(data.x_test), generator=torch.Generator().manual_seed(seed))
    x, y = data.x_test[order[:4 * n]].to(device), data.y_test[order[:4 * n]].to(device)
    with torch.no_grad():
        ok = (copy(x).argmax(1) == y).nonzero().flatten()[:n]
    return x[ok], y[ok]


def ours(name: str, oracle, overrides: tuple[str, ...] = ()):
    """Our attack ``name`` as the pipeline builds it from configs/attack/<name>.yaml, with Hydra
    ``overrides`` (e.g. ``attack.boundary.factory.max_iter=700``)."""
    spec = to_spec(tracer.compose(f"attack=[{name}]", *overrides)).evidence.attacks[0]
    return spec.factory(oracle)


def measure(attack, copy, x, y, epsilon: float) -> dict:
    """One attack on one round's images: seconds, which images it fooled within epsilon, L2."""
    synchronize(x.device)
    start = time.perf_counter()
    x_adv = attack.perturb(x, y)
    synchronize(x.device)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        fooled = (copy(x_adv).argmax(1) != y).cpu()
    l2 = (x_adv - x).flatten(1).norm(dim=1).cpu()
    return {"seconds": seconds, "fooled": fooled, "l2": l2,
            "queries": int(attack.last_queries.sum())}


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a timer brackets the attack's own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def joined(rows: list[dict]) -> dict:
    """One attack's rounds as one: seconds summed, per-image results concatenated."""
    return {"seconds": sum(r["seconds"] for r in rows),
            "queries": sum(r["queries"] for r in rows),
            "fooled": torch.cat([r["fooled"] for r in rows]),
            "l2": torch.cat([r["l2"] for r in rows])}


def compare(name: str, art: dict, our: dict, epsilon: float | None) -> float | None:
    """Print both attacks' figures; the ratio of successes per minute, or None (void) where ours
    is less successful or (with an L2 ``epsilon``) ends at larger perturbations than ART, beyond
    ``TOLERANCE``."""
    both = art["fooled"] & our["fooled"]
    success, rate = {}, {}
    for who, r in (("ART", art), ("ours", our)):
        within = r["l2"] <= epsilon if epsilon is not None else torch.ones_like(r["fooled"])
        success[who] = int((r["fooled"] & within).sum())
        rate[who] = 60 * success[who] / r["seconds"]
        median = float(r["l2"][both].median()) if both.any() else float("nan")
        n = len(r["fooled"])
        print(f"  {who:5s} {success[who]:3d}/{n} successful in {r['seconds']:7.1f} s: "
              f"{rate[who]:6.1f} per minute, {r['queries'] / n:6.0f} queries per image, "
              f"median L2 {median:.3f} (on the {int(both.sum())} both fooled)")
    l2_ratio = float((our["l2"][both] / art["l2"][both].clamp_min(1e-12)).median()) \
        if both.any() else float("nan")
    ratio = rate["ours"] / rate["ART"] if rate["ART"] > 0 else float("inf")
    as_good = (success["ours"] >= (1 - TOLERANCE) * success["ART"]
               and (epsilon is None or l2_ratio <= 1 + TOLERANCE))
    verdict = f"{ratio:.1f}x" if as_good else f"void (ours {ratio:.1f}x faster, but not as good)"
    equal = "success and L2" if epsilon is not None else "success"
    print(f"  {name}: L2 ours / ART per image, median {l2_ratio:.3f}; at equal {equal} "
          f"(within {TOLERANCE:.0%}): {verdict}")
    return ratio if as_good else None


def main(argv: list[str] | None = None) -> dict[str, float | None]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacks", nargs="+", default=list(ART_SETTINGS), choices=list(ART_SETTINGS))
    ap.add_argument("--images", type=int, default=12, help="images per round")
    ap.add_argument("--rounds", type=int, default=2, help="rounds on fresh images")
    ap.add_argument("--epsilon", type=float, default=1.0, help="L2 perturbation budget")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--query-batch", type=int, default=32, help="rows per model call of ART's")
    ap.add_argument("--run", help="a run directory whose copy 0 to attack")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    ap.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                    help="Hydra overrides of our attacks' configs, "
                         "e.g. attack.boundary.factory.max_iter=700")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    runtime.keep_heap()   # for ART and ours alike
    runtime.exact_float32()
    np.random.seed(0)   # ART's adapter draws its seed from numpy's global generator
    run = load_run(args.run or default_run(device))
    spec = to_spec(tracer.compose(f"dataset={run.manifest['dataset']}"))
    data = load_dataset(spec.data.name, n_train=1000, n_test=None)
    copy = run.load_copies(device).copy(0).eval()
    x, y = attack_images(copy, data, args.images * args.rounds + 2, device)
    (warm_x, x), (warm_y, y) = (x[-2:], x[:-2]), (y[-2:], y[:-2])
    print(f"{len(x)} {data.name} images in {args.rounds} rounds, copy 0 of {run.path}, "
          f"{device}, {torch.get_num_threads()} threads, "
          f"success: fools the copy within L2 {args.epsilon} (Square: within its Linf budget)")

    ratios = {}
    for name in args.attacks:
        art_name, settings = ART_SETTINGS[name]

        def oracle():   # the view ART's attack takes: labels, or scores for Square
            return ART_ATTACKS[art_name](copy, data.num_classes, device, budget=BUDGET)

        attacks = {"ART": ArtAttack(oracle(), art_name, batch_size=args.query_batch, **settings),
                   "ours": ours(name, oracle(), tuple(o for o in args.override
                                                      if o.startswith(f"attack.{name}.")))}
        print(f"{name}: ART {attacks['ART']!r}\n{' ' * len(name)}  ours {attacks['ours']!r}")
        for attack in attacks.values():   # untimed: the cold start (allocator, oneDNN kernels)
            attack.perturb(warm_x, warm_y)
        rows = {who: [] for who in attacks}
        for r in range(args.rounds):
            part = slice(r * args.images, (r + 1) * args.images)
            for who, attack in attacks.items():
                rows[who].append(measure(attack, copy, x[part], y[part], args.epsilon))
        ratios[name] = compare(name, joined(rows["ART"]), joined(rows["ours"]),
                               args.epsilon if name in L2_ATTACKS else None)
    print(" ".join(f"{name} {'void' if r is None else f'{r:.1f}x'}" for name, r in ratios.items()))
    return ratios


if __name__ == "__main__":
    main()
