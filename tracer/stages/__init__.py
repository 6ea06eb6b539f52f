"""The stages, each reading and writing a run directory: separate -> attack -> trace ->
calibrate -> report (one module each).

They take plain objects (data, specs, families), never a config, so notebooks and the CLI call the
same functions. A finished stage is skipped when run again; an interrupted one resumes.
"""
from tracer.stages.attacking import attack, collusion_groups, shard_ranges
from tracer.stages.calibrating import calibrate
from tracer.stages.reporting import draw_attack_plots, report
from tracer.stages.separating import SeparationSpec, separate
from tracer.stages.tracing import default_scorer, trace, traced_evidence

__all__ = ["SeparationSpec", "attack", "calibrate", "collusion_groups", "default_scorer",
           "draw_attack_plots", "report", "separate", "shard_ranges", "trace", "traced_evidence"]
