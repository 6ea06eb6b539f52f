"""Collect ``metrics.json`` from run directories (single runs and Hydra multirun trees) into
tables: one row per (dataset, model, method, copies, alpha, theta, attack) with mean and standard
deviation over seeds and the paper's figure beside ours where it has one (Tables 1-5); the same
cells with the methods side by side (:func:`pivot`); and accuracy against the number of copies,
exact and the paper's Monte-Carlo estimate (:func:`num_copies_rows`).
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from tracer.evaluation.paper_figures import paper_clean_acc, paper_trace_acc
from tracer.evaluation.tables import markdown_table

GROUP = ("dataset", "model", "method", "num_copies", "alpha", "theta_deg", "colluders",
         "adaptive", "attack")
VALUES = ("base_clean_acc", "min_copy_clean_acc", "success_rate", "transfer_rate", "trace_acc",
          "trace_acc_transferable", "trace_acc_nontransferable", "ks_d", "trace_any_colluder",
          "trace_all_colluders", "detection_rate")


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
        base["theta_deg"] = m.get("theta_deg")
        # a variant of the method gets its own column: the residual tracer keyed by the paper's
        # permutations (its own keys are projections), copies with classifiers of their own
        variants = [v for v, on in (("permutation", m["method"] == "residual"
                                     and m.get("keying") == "permutation"),
                                    ("orthogonal", m.get("classifiers") == "orthogonal")) if on]
        base["method"] += "".join(f"/{v}" for v in variants)
        base["min_copy_clean_acc"] = min(m["copy_clean_acc"])
        return [{**base, "attack": name, "run": str(path.parent), "colluders": a.get("colluders", 1),
                 "adaptive": a.get("adaptive", "none"),
                 **{k: a.get(k) for k in VALUES if k in a},
                 "by_num_copies": a.get("trace_acc_by_num_copies", {}),
                 "mc_by_num_copies": a.get("trace_acc_mc_by_num_copies", {})}
                for name, a in m["attacks"].items()]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a tracer metrics.json ({e!r})") from e


def _mean_std(xs: list[float]) -> tuple[float, float] | None:
    return (statistics.fmean(xs), statistics.pstdev(xs) if len(xs) > 1 else 0.0) if xs else None


def _groups(rows: list[dict], keys: tuple[str, ...]) -> list[tuple[tuple, list[dict]]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0])))


def summarise(rows: list[dict]) -> list[dict]:
    """Group rows by GROUP; each value becomes (mean, std) over the seeds present."""
    out = []
    for key, members in _groups(rows, GROUP):
        row = dict(zip(GROUP, key))
        row["seeds"] = len(members)
        for v in VALUES:
            row[v] = _mean_std([r[v] for r in members if r.get(v) is not None])
        row["paper_clean_acc"] = paper_clean_acc(row["dataset"], row["model"], row["alpha"])
        row["paper_trace_acc"] = paper_trace_acc(row["dataset"], row["model"], row["attack"],
                                                 row["alpha"], row["num_copies"],
                                                 row["theta_deg"], row["colluders"])
        out.append(row)
    return out


_CELL = ("dataset", "model", "num_copies", "colluders", "adaptive", "attack")


def pivot(summary: list[dict], column: str = "method", value: str = "trace_acc") -> list[dict]:
    """The rows of :func:`summarise` with one ``value`` column per ``column`` value (the methods
    side by side). A method without alpha (a baseline) sits in every alpha row of its cell."""
    out = []
    for key, members in _groups(summary, _CELL):
        alphas = sorted({r["alpha"] for r in members if r["alpha"] is not None}) or [None]
        for alpha in alphas:
            row = {**dict(zip(_CELL, key)), "alpha": alpha}
            for r in members:
                if r["alpha"] in (alpha, None) and r["theta_deg"] in (None, 75.0):
                    row[str(r[column])] = r[value]
                    row["paper_trace_acc"] = row.get("paper_trace_acc") or r["paper_trace_acc"]
            out.append(row)
    return out


def num_copies_rows(rows: list[dict]) -> list[dict]:
    """Tracing accuracy for every number of copies n: exact (every n-subset of the copies) and
    the paper's Monte-Carlo estimate, mean and std over seeds."""
    out = []
    for key, members in _groups(rows, GROUP):
        sizes = sorted({int(n) for r in members for n in r["by_num_copies"]})
        for n in sizes:
            out.append({**dict(zip(GROUP, key)), "n": n, "seeds": len(members),
                        "exact": _mean_std([r["by_num_copies"][str(n)] for r in members
                                            if r["by_num_copies"].get(str(n)) is not None]),
                        "monte_carlo": _mean_std([r["mc_by_num_copies"][str(n)] for r in members
                                                  if r["mc_by_num_copies"].get(str(n)) is not None])})
    return out


# A column of a table: (header, row key, kind). kind: text (as it is), rate ((mean, std) of a
# fraction, shown in percent), stat ((mean, std) shown as it is), paper (a percent or None).
Column = tuple[str, str, str]


def main_columns() -> list[Column]:
    return [*((k, k, "text") for k in (*GROUP, "seeds")),
            *((v, v, "stat") if v == "ks_d" else (f"{v} %", v, "rate") for v in VALUES),
            ("paper clean %", "paper_clean_acc", "paper"),
            ("paper trace %", "paper_trace_acc", "paper")]


def pivot_columns(rows: list[dict], value: str = "trace_acc") -> list[Column]:
    fixed = {*_CELL, "alpha", "paper_trace_acc"}
    methods = sorted({k for r in rows for k in r} - fixed)
    return [*((k, k, "text") for k in (*_CELL, "alpha")),
            *((f"{m} {value} %", m, "rate") for m in methods),
            ("paper trace %", "paper_trace_acc", "paper")]


def copies_columns() -> list[Column]:
    return [*((k, k, "text") for k in (*GROUP, "n", "seeds")), ("exact %", "exact", "rate"),
            ("Monte-Carlo %", "monte_carlo", "rate")]


def _display(value, kind: str, pm: str) -> str:
    if value is None:
        return "-"
    if kind == "text":
        return str(value)
    if kind == "paper":
        return f"{value:.1f}"
    scale, digits = (100, 1) if kind == "rate" else (1, 2)
    mean, std = value
    return f"{scale * mean:.{digits}f}" + (f" {pm} {scale * std:.{digits}f}" if std else "")


def to_markdown(columns: list[Column], rows: list[dict]) -> str:
    """Rates in percent, mean ± std over seeds."""
    return markdown_table([c[0] for c in columns],
                          [[_display(r.get(key), kind, "±") for _, key, kind in columns]
                           for r in rows]) + "\n"


def to_csv(columns: list[Column], rows: list[dict]) -> str:
    """Means and standard deviations in separate columns, as fractions."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([n for _, key, kind in columns
                for n in ((f"{key}_mean", f"{key}_std") if kind in ("rate", "stat") else (key,))])
    for r in rows:
        cells = []
        for _, key, kind in columns:
            v = r.get(key)
            if kind in ("rate", "stat"):
                cells += list(v) if v is not None else ["", ""]
            else:
                cells.append("" if v is None else v)
        w.writerow(cells)
    return buf.getvalue()


def to_latex(columns: list[Column], rows: list[dict]) -> str:
    esc = lambda s: s.replace("_", r"\_").replace("%", r"\%")  # noqa: E731
    lines = [r"\begin{tabular}{" + "l" * len(columns) + "}", r"\toprule",
             " & ".join(esc(c[0]) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(_display(r.get(key), kind, r"$\pm$")) for _, key, kind in columns)
              + r" \\" for r in rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def tables(rows: list[dict]) -> dict[str, tuple[list[Column], list[dict]]]:
    """Every table of the rows of :func:`metric_rows`: name -> (columns, rows)."""
    summary = summarise(rows)
    by_method = pivot(summary)
    return {"tables": (main_columns(), summary),
            "by_method": (pivot_columns(by_method), by_method),
            "copies": (copies_columns(), num_copies_rows(rows))}


def main(argv: list[str] | None = None) -> None:
    """``make_tables.py RUN_DIR... [--out DIR]``: print the Markdown tables (every cell; the
    methods side by side; accuracy against the number of copies); with --out also write each as
    <name>.md, <name>.csv and <name>.tex there."""
    import argparse

    from tracer.io import atomic_write_text
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories, multirun directories or "
                        "metrics.json files")
    parser.add_argument("--out", type=Path, help="write the tables as .md, .csv and .tex here")
    args = parser.parse_args(argv)
    try:
        found = tables([r for p in find_metrics(args.runs) for r in metric_rows(p)])
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f"make_tables: {e}\n")
    titles = {"tables": "Every cell", "by_method": "Methods side by side",
              "copies": "Tracing accuracy against the number of copies"}
    for name, (columns, rows) in found.items():
        print(f"## {titles[name]}\n\n{to_markdown(columns, rows)}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, (columns, rows) in found.items():
            for ext, fmt in (("md", to_markdown), ("csv", to_csv), ("tex", to_latex)):
                atomic_write_text(args.out / f"{name}.{ext}", fmt(columns, rows))
        for path in draw_curves(found["tables"][1], found["copies"][1], args.out):
            print(f"wrote {path}")


def draw_curves(summary: list[dict], copies: list[dict], out: Path) -> list[Path]:
    """Tracing accuracy against alpha, theta and the number of copies, wherever the runs vary
    it (a curve needs two points)."""
    from tracer.evaluation import plots
    drawn = []
    for x, rows, value, label in (("alpha", summary, "trace_acc", "alpha"),
                                  ("theta_deg", summary, "trace_acc", "theta (degrees)"),
                                  ("n", copies, "exact", "number of copies")):
        if len({r[x] for r in rows if r.get(x) is not None}) > 1:
            drawn.append(plots.accuracy_curve(
                rows, x, out / f"trace_acc_vs_{x}.png", value=value, xlabel=label,
                series=tuple(k for k in GROUP if k != x), title=f"tracing accuracy vs {label}"))
    return drawn


if __name__ == "__main__":
    main()
