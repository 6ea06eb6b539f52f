"""Metrics, tables and plots, all generated from the files of run directories."""
from tracer.evaluation.metrics import AttackMetrics, RunMetrics, trace_metrics, transferable
from tracer.evaluation.tables import markdown_table, results_markdown

__all__ = ["AttackMetrics", "RunMetrics", "trace_metrics", "transferable", "markdown_table",
           "results_markdown"]
