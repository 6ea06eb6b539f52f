"""The stages, each reading and writing a run directory: separate -> attack -> trace ->
calibrate -> report (one module each).

Each takes its inputs, its own spec and the run directory (then, by keyword, the seed, the
device and what it borrows from another stage), never a config, so notebooks and the CLI call
the same functions. A finished stage is skipped when run again; an interrupted one resumes.
"""
from tracer.stages.attacking import attack, collusion_groups, shard_ranges
from tracer.stages.calibrating import calibrate
from tracer.stages.reporting import draw_attack_plots, report
from tracer.stages.separating import separate
from tracer.stages.tracing import scorer_name, trace, traced_evidence

__all__ = ["attack", "calibrate", "collusion_groups", "draw_attack_plots", "report", "separate",
           "scorer_name", "shard_ranges", "trace", "traced_evidence"]
