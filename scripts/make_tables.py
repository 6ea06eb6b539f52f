"""Collect metrics.json from run and multirun directories into Markdown, CSV and LaTeX tables.

    python scripts/make_tables.py outputs/alpha_fmnist/sweep_* --out tables/
"""
from tracer.evaluation.collect import main

if __name__ == "__main__":
    main()
