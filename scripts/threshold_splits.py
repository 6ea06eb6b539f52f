"""How much a run's abstention threshold owes to its calibration/held-out split.

    python scripts/threshold_splits.py RUN [--splits 200] [--confidence C | none]  (default: the run's)
"""
from tracer.evaluation.threshold_splits import main

if __name__ == "__main__":
    main()
