"""The public API a notebook needs: the same functions the CLI calls."""
from tracer.config import compose
from tracer.pipeline import run
from tracer.runs import load_run
from tracer.stages import attack, report, separate, trace

__all__ = ["compose", "run", "load_run", "separate", "attack", "trace", "report"]
