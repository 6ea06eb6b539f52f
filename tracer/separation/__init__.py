"""Separation: train C and the noise-sensitive tracer T_0, then key the copies (permutations or
projections); the methods that assemble them are in tracer.methods."""
from tracer.separation.losses import (noise_prediction_loss, noise_sensitive_loss,
                                      random_noise_levels, vae_loss)
from tracer.separation.permutations import agreement, make_permutations
from tracer.separation.spec import SeparationSpec
from tracer.separation.train import (ClassifierTraining, TracerTraining, fit, train_classifier,
                                     train_residual_tracer, train_vae_tracer)

__all__ = ["noise_prediction_loss", "noise_sensitive_loss", "random_noise_levels", "vae_loss",
           "agreement", "make_permutations", "SeparationSpec", "ClassifierTraining",
           "TracerTraining", "fit", "train_classifier", "train_residual_tracer",
           "train_vae_tracer"]
