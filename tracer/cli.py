"""The ``tracer`` command: ``tracer investigate ...`` names the copies image files came from,
``tracer export ...`` ships a copy; anything else is the pipeline's Hydra app
(``tracer key=value ...``, as ``python -m tracer.pipeline``).

    tracer investigate RUN_DIR FILE... [--json REPORT]
    tracer export RUN_DIR --copy I --out FILE [--data-root DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def investigate_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tracer investigate",
                                 description="name the copy each image file came from, or none")
    ap.add_argument("run", help="a run directory with a calibrate stage")
    ap.add_argument("files", nargs="+", help="PNG / JPEG images or .npy / .npz arrays in [0, 1]")
    ap.add_argument("--json", help="write a report of every file's verdict here")
    ap.add_argument("--one-buyer", action="store_true",
                    help="the files come from one buyer: also name them together, at the "
                         "threshold calibrated for groups (at least the smallest group size)")
    args = ap.parse_args(argv)
    from dataclasses import asdict
    from pathlib import Path

    from tracer.investigate import BadInput, Investigator, describe, describe_together
    from tracer.io import IntegrityError, write_json
    from tracer.runs import load_run
    try:
        inv = Investigator(load_run(args.run))
    except (BadInput, IntegrityError, FileNotFoundError) as err:
        print(f"tracer investigate: {err}", file=sys.stderr)
        return 2
    findings, status = [], 0
    for name in args.files:
        try:
            f = inv.investigate(Path(name))
        except (BadInput, FileNotFoundError, IsADirectoryError) as err:
            print(f"tracer investigate: {err}", file=sys.stderr)
            status = 2
            continue
        print(describe(f, inv.threshold))
        findings.append(asdict(f))
    report = {**inv.header(), "files": findings}
    if args.one_buyer:
        # a group is the files the investigator named: with one of them unreadable there is none
        try:
            if status:
                raise BadInput("the files are not named together: some could not be read")
            together = inv.investigate_together([Path(name) for name in args.files])
            print(describe_together(together))
            report["together"] = asdict(together)
        except (BadInput, FileNotFoundError, IsADirectoryError) as err:
            print(f"tracer investigate: {err}", file=sys.stderr)
            status = 2
    if args.json:
        write_json(args.json, report)
    return status


def export_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tracer export",
                                 description="write buyer I's model as TorchScript, holding its "
                                             "key only, after checking it against the run's copy")
    ap.add_argument("run", help="a run directory with a separate stage")
    ap.add_argument("--copy", type=int, required=True, help="the copy (buyer) to export")
    ap.add_argument("--out", required=True, help="the TorchScript file to write")
    ap.add_argument("--check-images", type=int, default=1000,
                    help="test images the exported outputs are compared on")
    ap.add_argument("--data-root", help="where the run's data set is (default: dataset.root of "
                                        "the run's config.yaml, else the data set's usual place)")
    args = ap.parse_args(argv)
    from tracer.data import DataError, load_dataset
    from tracer.export import ExportError, export_copy
    from tracer.io import IntegrityError
    from tracer.runs import load_run
    try:
        run = load_run(args.run)
        shape = tuple(run.manifest["input"]["shape"])
        root = args.data_root or _configured_data_root(run.path)
        data = load_dataset(run.manifest["dataset"], root, n_train=1, n_test=args.check_images)
        if tuple(data.shape) != shape:   # the run resized its images (dataset.image_size)
            data = load_dataset(run.manifest["dataset"], root, n_train=1,
                                n_test=args.check_images, image_size=shape[-1])
        worst = export_copy(run, args.copy, args.out, data.x_test)
    except (ExportError, IntegrityError, DataError, FileNotFoundError, KeyError) as err:
        print(f"tracer export: {err}", file=sys.stderr)
        return 2
    print(f"copy {args.copy} of {run.path} -> {args.out} (outputs within {worst:.1e} of the run's "
          f"on {len(data.x_test)} test images)")
    return 0


def _configured_data_root(run_dir) -> str | None:
    """dataset.root of the config the run was made with (its config.yaml), if it names one."""
    import yaml
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    cfg = yaml.safe_load(path.read_text()) or {}
    return (cfg.get("dataset") or {}).get("root")


def main(argv: list[str] | None = None) -> int | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "export":
        return export_main(argv[1:])
    if argv and argv[0] == "investigate":
        return investigate_main(argv[1:])
    from tracer.pipeline import main as pipeline_main
    return pipeline_main()


if __name__ == "__main__":
    sys.exit(main())
