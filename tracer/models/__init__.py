"""Models: the classifier C (backbones), the tracer T_0 (the residual tracer, or the paper's VAE
encoder) and the copies ``M_i = C + alpha * T_i`` built from them."""
from tracer.models.backbones import CLASSIFIERS, Normalize, build_classifier
from tracer.models.copies import (Copy, OutputNorm, PermutedCopies, ProjectedCopies, TracerCopies,
                                  random_projections)
from tracer.models.factory import InputSpec, ModelSpec, TracerSpec, build_base, build_copies
from tracer.models.predict import predict_labels
from tracer.models.residual import ResidualTracer
from tracer.models.vae import VAETracer

__all__ = ["CLASSIFIERS", "Normalize", "build_classifier", "VAETracer", "OutputNorm", "Copy",
           "TracerCopies", "PermutedCopies", "ProjectedCopies", "random_projections",
           "InputSpec", "ModelSpec", "TracerSpec", "build_base", "build_copies",
           "predict_labels", "ResidualTracer"]
