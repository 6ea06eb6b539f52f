"""Models: the classifier C (backbones), the tracer T_0 (a VAE's encoder) and the copies
``M_i = C + alpha * T_i`` built from them."""
from tracer.models.backbones import CLASSIFIERS, Normalize, build_classifier
from tracer.models.copies import (Copy, CopyFamily, OutputNorm, PermutedCopyFamily,
                                  ProjectedCopyFamily, random_projections)
from tracer.models.factory import (TRACER_KINDS, InputSpec, ModelSpec, TracerSpec, build_base,
                                   build_family, build_tracer)
from tracer.models.residual import ResidualTracer
from tracer.models.vae import VAETracer

__all__ = ["CLASSIFIERS", "Normalize", "build_classifier", "VAETracer", "OutputNorm", "Copy",
           "CopyFamily", "PermutedCopyFamily", "ProjectedCopyFamily", "random_projections",
           "InputSpec", "ModelSpec", "TracerSpec", "TRACER_KINDS", "build_base",
           "build_tracer", "build_family", "ResidualTracer"]
