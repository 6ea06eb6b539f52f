"""Give a run made before common directions existed the ones its separation would make now.

    python scripts/add_common_directions.py RUN_DIR [--share 0.025]

The directions (tracer.models.common_directions) change what tracing reads, not the copies a
buyer queried, so the run's evidence stays valid: afterwards rerun its later stages
(``python -m tracer.pipeline stage=trace hydra.run.dir=RUN_DIR``, then ``stage=calibrate``).
Writes ``separate/common_directions.npy``, adds it, with its count and sha256, to the manifest,
and points each attack's record (``attack.json``) that matched the old manifest at the new one;
each write atomic, the file first. Refuses a run that is not the residual tracer with projection
keys, that has its directions already, or whose evidence was made against another manifest.
"""
from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf

from tracer.config import to_spec
from tracer.io import read_json, save_npy, sha256_file, write_json
from tracer.methods import COMMON_DIRECTIONS_FILE
from tracer.models.common_directions import run_common_directions
from tracer.pipeline import load_data
from tracer.runs import load_run
from tracer.separation import SeparationSpec


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--share", type=float, default=SeparationSpec.common_share,
                    help="share of the residual's dimensions (default: separation's, "
                         f"{SeparationSpec.common_share})")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    run = load_run(args.run)
    m = run.manifest
    if m.get("keying") != "projection":
        raise SystemExit(f"{args.run}: common directions need projection keys")
    if m.get("common_directions"):
        raise SystemExit(f"{args.run}: has {m['common_directions']} common directions already")
    copies = run.load_copies()
    data = load_data(to_spec(OmegaConf.load(run.path / "config.yaml")), download=False)
    found = run_common_directions(copies.tracer, data.x_train, args.share, int(m["seed"]))
    if found is None:
        raise SystemExit(f"--share {args.share} makes no direction")
    num = found.shape[1]
    old = sha256_file(run.manifest_path)
    records = {name: read_json(run.attack_dir(name) / "attack.json") for name in run.attacks()}
    stale = [name for name, r in records.items() if r.get("manifest_sha256") != old]
    if stale:
        raise SystemExit(f"{args.run}: evidence of {', '.join(stale)} was made against another "
                         "manifest; nothing changed")
    path = run.separate_dir / COMMON_DIRECTIONS_FILE
    save_npy(path, found.numpy())
    write_json(run.manifest_path, {**m, "common_directions": num,
                                   "files": {**m["files"], COMMON_DIRECTIONS_FILE:
                                             sha256_file(path)}})
    new = sha256_file(run.manifest_path)
    for name, record in records.items():
        write_json(run.attack_dir(name) / "attack.json", {**record, "manifest_sha256": new})
    print(f"{args.run}: {num} common directions written; rerun stage=trace and "
          "stage=calibrate")


if __name__ == "__main__":
    main()
