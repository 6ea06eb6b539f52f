"""tracer: adversarial source tracing (Fang et al., arXiv 2301.01218 / ICCV 2023).

A seller ships copies ``M_i = C + alpha * pi_i(T_0)`` of one classifier; given adversarial
examples, tracer names the copy they were made on. The names a notebook needs are re-exported
here, imported on first use so that ``python -m tracer.<module>`` starts light.
"""
import importlib

__version__ = "0.1.0"

__all__ = ["__version__", "compose", "run", "load_run", "separate", "attack", "trace", "report"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("tracer.api"), name)
    raise AttributeError(f"module 'tracer' has no attribute {name!r}")
