"""Markdown tables generated from metrics (never typed by hand)."""
from __future__ import annotations


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def results_markdown(metrics: dict) -> str:
    """The run summary: a line on the copies, then one row per attack (rates in %)."""
    copy_accs = metrics["copy_clean_acc"]
    accs = ", ".join(pct(a) for a in copy_accs) if len(copy_accs) <= 20 else \
        f"{pct(min(copy_accs))}-{pct(max(copy_accs))}"
    alpha = "no tracer" if metrics["alpha"] is None else f"alpha {metrics['alpha']}"
    base = "" if metrics["base_clean_acc"] is None else \
        f"C clean acc {pct(metrics['base_clean_acc'])}%, "
    head = (f"**{metrics['dataset']} / {metrics['model']} / {metrics['method']}**: "
            f"{metrics['num_copies']} copies, {alpha}, {base}copies {accs}%; "
            f"trace % with scorer {metrics['scorer']}")
    scorers = sorted({s for a in metrics["attacks"].values() for s in a["trace_acc_by_scorer"]})
    header = ["attack", "evidence", "success %", "transfer %", "trace %", "trace transf. %",
              "trace non-transf. %", *[f"{s} %" for s in scorers], "confidence %", "ECE",
              "KS D", "mean queries", "L2 median", "Linf median"]
    rows = [[name, str(a["num_evidence"]), pct(a["success_rate"]), pct(a["transfer_rate"]),
             pct(a["trace_acc"]), pct(a["trace_acc_transferable"]),
             pct(a["trace_acc_nontransferable"]),
             *[pct(a["trace_acc_by_scorer"].get(s)) for s in scorers],
             pct(a.get("confidence_mean")), num(a.get("ece"), 3), num(a.get("ks_d"), 2),
             num(a["mean_queries"]), num(a.get("l2_median"), 3),
             num(a.get("linf_median"), 3)] for name, a in metrics["attacks"].items()]
    return head + "\n\n" + markdown_table(header, rows) + "\n"
