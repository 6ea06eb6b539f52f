"""What the separation stage is asked to build: :class:`SeparationSpec`."""
from __future__ import annotations

from dataclasses import dataclass, field

from tracer.models.factory import ModelSpec, TracerSpec
from tracer.separation.train import ClassifierTraining, TracerTraining

KEYINGS = ("permutation", "projection")
CLASSIFIERS = ("shared", "orthogonal")


@dataclass
class SeparationSpec:
    """Everything the separation stage needs besides the data.

    ``method``: a name of ``tracer.methods.METHODS``: ``residual`` (ours, C + alpha * pi_i(T_0)
    with the residual tracer), ``paper`` (the same with the paper's VAE tracer), or a baseline:
    ``naive`` (C retrained from other seeds) or ``watermark`` (C fine-tuned behind a random input
    mask per copy).
    """
    method: str = "residual"
    model: ModelSpec = field(default_factory=ModelSpec)
    classifier: ClassifierTraining = field(default_factory=ClassifierTraining)
    tracer: TracerSpec = field(default_factory=TracerSpec)
    tracer_training: TracerTraining = field(default_factory=TracerTraining)
    num_copies: int = 5
    alpha: float = 0.15          # weight of the tracer in M_i = C + alpha * T_i
    max_agreement: int = 1       # permutations agree pairwise on at most this many positions
    keying: str | None = None    # how the tracer's copies differ: projection (residual tracer
                                 # only: copy i reads R(x) through its own P_i; any number of
                                 # copies) or permutation (the paper's, <= K(K-1) copies);
                                 # None: the method's own (the paper's: permutation)
    unsold_keys: int = 1000      # projection keys sold to nobody, for the key test
                                 # (tracer.tracing); 0: no key test
    common_share: float = 0.025  # projection keys: the share of the residual's d dimensions
                                 # that attacks fill whatever copy they target, removed before
                                 # tracing reads it (tracer.models.common_directions; 20 of
                                 # fashion_mnist's 784); 0: none
    reuse: str | None = None     # a finished run whose C and T_0 to take where they would be
                                 # trained the same way (ablations over alpha, gain, copies)
    classifiers: str = "shared"  # tracer: one C for every copy, or "orthogonal": copy i's own C_i
                                 # fine-tuned from C with the gradient-orthogonal loss
    orthogonal_weight: float = 1.0
    masked_fraction: float = 0.1  # watermark: share of input positions each copy masks
    # fine-tuning, from C, of the watermark's copies and the orthogonal C_i: as before C saw
    # adversarial examples (docs/method.md section 11), so that those baselines do not change
    finetune: ClassifierTraining = field(default_factory=lambda: ClassifierTraining(
        epochs=1, random_share=0.5, adversarial_share=0.0))
    train_cache: str | None = None  # a directory of trained networks keyed by everything their
                                    # training depends on; None: no cache

    def __post_init__(self):
        from tracer.methods import METHODS   # the registry imports this module
        if self.method not in METHODS:
            raise ValueError(f"unknown separation method {self.method!r}; known: {sorted(METHODS)}")
        if self.num_copies < 1:
            raise ValueError(f"num_copies must be at least 1, got {self.num_copies}")
        if self.unsold_keys < 0:
            raise ValueError(f"unsold_keys must be at least 0, got {self.unsold_keys}")
        if not 0 <= self.common_share < 1:
            raise ValueError(f"common_share must be in [0, 1), got {self.common_share}")
        if self.classifiers not in CLASSIFIERS:
            raise ValueError(f"unknown classifiers {self.classifiers!r}; known: {CLASSIFIERS}")
        if self.keying is None:
            self.keying = "permutation" if self.method == "paper" else "projection"
        if self.keying not in KEYINGS:
            raise ValueError(f"unknown keying {self.keying!r}; known: {KEYINGS}")
        if self.keying == "projection" and self.method == "paper":
            raise ValueError("keying=projection needs the residual tracer (separation=residual); "
                             f"this method is {self.method!r}")
