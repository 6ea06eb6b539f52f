"""Collect ``metrics.json`` from run directories (single runs and Hydra multirun trees) into one
table per experiment: one row per (dataset, model, method, copies, alpha, attack), mean and
standard deviation over seeds, the paper's figure beside ours where it has one.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from tracer.evaluation.paper_figures import paper_trace_acc
from tracer.evaluation.tables import markdown_table

GROUP = ("dataset", "model", "method", "num_copies", "alpha", "attack")
VALUES = ("base_clean_acc", "min_copy_clean_acc", "success_rate", "transfer_rate", "trace_acc",
          "trace_acc_transferable", "trace_acc_nontransferable", "ks_d")


def find_metrics(paths: list[str | Path]) -> list[Path]:
    """Every metrics.json at or below ``paths`` (sorted); a path with none is an error."""
    found = []
    for p in map(Path, paths):
        hits = [p] if p.is_file() else sorted(p.rglob("metrics.json"))
        if not hits:
            raise FileNotFoundError(f"{p}: no metrics.json at or below it")
        found += hits
    return sorted(set(found))


def metric_rows(path: Path) -> list[dict]:
    """One row per attack of one run's metrics.json (rates as fractions)."""
    m = json.loads(path.read_text())
    try:
        base = {k: m[k] for k in ("dataset", "model", "method", "num_copies", "alpha", "seed",
                                  "base_clean_acc")}
        base["min_copy_clean_acc"] = min(m["copy_clean_acc"])
        return [{**base, "attack": name, "run": str(path.parent),
                 **{k: a.get(k) for k in VALUES if k in a}}
                for name, a in m["attacks"].items()]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a tracer metrics.json ({e!r})") from e


def summarise(rows: list[dict]) -> list[dict]:
    """Group rows by GROUP; each value becomes (mean, std, count) over the seeds present."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in GROUP), []).append(r)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        row = dict(zip(GROUP, key))
        row["seeds"] = len(members)
        for v in VALUES:
            xs = [r[v] for r in members if r.get(v) is not None]
            row[v] = (statistics.fmean(xs), statistics.pstdev(xs) if len(xs) > 1 else 0.0) \
                if xs else None
        row["paper_trace_acc"] = paper_trace_acc(row["dataset"], row["model"], row["attack"],
                                                 row["alpha"], row["num_copies"])
        out.append(row)
    return out


def _fmt(value, pm: str, percent: bool) -> str:
    """A (mean, std) as 'mean ± std': rates in percent, KS D as it is."""
    if value is None:
        return "-"
    if isinstance(value, tuple):
        scale, digits = (100, 1) if percent else (1, 2)
        mean, std = value
        return f"{scale * mean:.{digits}f}" + (f" {pm} {scale * std:.{digits}f}" if std else "")
    return str(value)


def _cells(rows: list[dict], pm: str) -> tuple[list[str], list[list[str]]]:
    """Header and cells for display: rates (%) under names ending in ' %'."""
    header = [*GROUP, "seeds", *[v if v == "ks_d" else f"{v} %" for v in VALUES],
              "paper trace %"]
    body = [[*("-" if r[k] is None else str(r[k]) for k in (*GROUP, "seeds")),
             *(_fmt(r[v], pm, v != "ks_d") for v in VALUES), _fmt(r["paper_trace_acc"], pm, False)]
            for r in rows]
    return header, body


def to_markdown(rows: list[dict]) -> str:
    """Rates in percent, mean ± std over seeds."""
    return markdown_table(*_cells(rows, "±")) + "\n"


def to_csv(rows: list[dict]) -> str:
    """Means and standard deviations in separate columns, as fractions."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*GROUP, "seeds", *[f"{v}_{s}" for v in VALUES for s in ("mean", "std")],
                "paper_trace_acc"])
    for r in rows:
        stats = [x for v in VALUES for x in (r[v] if r[v] is not None else ("", ""))]
        w.writerow([*(r[k] for k in GROUP), r["seeds"], *stats, r["paper_trace_acc"] or ""])
    return buf.getvalue()


def to_latex(rows: list[dict]) -> str:
    header, body = _cells(rows, r"$\pm$")
    esc = lambda s: s.replace("_", r"\_")  # noqa: E731
    lines = [r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule",
             " & ".join(map(esc, header)) + r" \\", r"\midrule"]
    lines += [" & ".join(map(esc, r)) + r" \\" for r in body]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``make_tables.py RUN_DIR... [--out DIR]``: print the Markdown table; with --out also write
    tables.md, tables.csv and tables.tex there."""
    import argparse

    from tracer.io import atomic_write_text
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories, multirun directories or "
                        "metrics.json files")
    parser.add_argument("--out", type=Path, help="write tables.{md,csv,tex} to this directory")
    args = parser.parse_args(argv)
    try:
        rows = summarise([r for p in find_metrics(args.runs) for r in metric_rows(p)])
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f"make_tables: {e}\n")
    print(to_markdown(rows), end="")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for ext, text in (("md", to_markdown(rows)), ("csv", to_csv(rows)),
                          ("tex", to_latex(rows))):
            atomic_write_text(args.out / f"tables.{ext}", text)


if __name__ == "__main__":
    main()
