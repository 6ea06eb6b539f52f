"""Baselines traced in the same framework as the tracer method (issue 5): same data, classifier
architecture, attacks and evidence; only the copies and the scoring rule differ."""
from tracer.baselines.independent import IndependentCopies, crossing_margin
from tracer.baselines.watermark import InputMask, MaskedCopies, mask_change, random_masks

__all__ = ["IndependentCopies", "crossing_margin", "InputMask", "MaskedCopies", "mask_change",
           "random_masks"]
