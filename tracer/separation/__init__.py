"""Separation: train C and the noise-sensitive tracer T_0, then key the copies with permutations."""
from tracer.separation.losses import (add_noise, noise_prediction_loss, noise_sensitive_loss,
                                      random_noise_levels, vae_loss)
from tracer.separation.permutations import agreement, make_permutations
from tracer.separation.train import (TRAINERS, ClassifierTraining, TracerTraining, fit,
                                     predict_labels, train_classifier, train_residual_tracer,
                                     train_vae_tracer)

__all__ = ["add_noise", "noise_prediction_loss", "noise_sensitive_loss", "random_noise_levels",
           "vae_loss", "agreement", "make_permutations", "TRAINERS", "ClassifierTraining",
           "TracerTraining", "fit", "predict_labels", "train_classifier", "train_residual_tracer",
           "train_vae_tracer"]
