"""Separation (paper.md): train C and the noise-sensitive tracer T_0, then key the copies."""
from tracer.separation.losses import add_noise, noise_sensitive_loss, vae_loss
from tracer.separation.permutations import agreement, make_permutations
from tracer.separation.train import (ClassifierTraining, TracerTraining, fit, predict_labels,
                                     train_classifier, train_tracer)

__all__ = ["add_noise", "noise_sensitive_loss", "vae_loss", "agreement", "make_permutations",
           "ClassifierTraining", "TracerTraining", "fit", "predict_labels", "train_classifier",
           "train_tracer"]
