"""The base tracer T_0: the encoder of a VAE (paper.md, "Base tracer").

Encoder: a strided Conv-BN-ReLU, two residual blocks, a strided conv block, a linear layer and Tanh, giving
K outputs in [-1, 1]. The VAE reads the first K//2 outputs as mu and the next K//2 as the
parameter of sigma; the decoder (linear, double-conv block, two upsample-conv blocks, conv)
reconstructs the image. Only the encoder goes into the copies. Widths and strides are ours
(docs/method.md): the strided stem makes T_0 about four times cheaper on a CPU, which matters
because every query of a decision-based attack runs it.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tracer.models.backbones import Normalize


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn_relu(c, c), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


class TracerEncoder(nn.Module):
    """T_0: image in [0, 1] -> K outputs in [-1, 1] (Tanh).

    What copies read of it (as of the residual tracer): ``features(x)``, its K pre-activations,
    which a copy's key permutes; ``readout`` and ``gain`` leave them as they are.
    """

    scorers = ("dol", "logit_dol_label")   # the rules tracing offers; the first is the default
    gain = 1.0

    def __init__(self, num_outputs: int, in_channels: int, image_size: int,
                 mean: Sequence[float], std: Sequence[float], *, width: int):
        super().__init__()
        feat = ((image_size + 1) // 2 + 1) // 2
        self.net = nn.Sequential(
            Normalize(mean, std), _conv_bn_relu(in_channels, width, stride=2),
            ResidualBlock(width), ResidualBlock(width), _conv_bn_relu(width, 2 * width, stride=2),
            nn.Flatten(), nn.Linear(2 * width * feat * feat, num_outputs))

    def pre_activation(self, x: Tensor) -> Tensor:
        """The outputs before Tanh (what the logit scorers read: Tanh saturates)."""
        return self.net(x)

    def features(self, x: Tensor, debiased: bool = False) -> tuple[Tensor, None]:
        """(the K pre-activations [n, K], None: the encoder has no debiased reading)."""
        return self.net(x), None

    def readout(self, features: Tensor) -> Tensor:
        return features

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.net(x))


class Decoder(nn.Module):
    """latent [n, L] -> image [n, C, H, W] in [0, 1]."""

    def __init__(self, latent: int, out_channels: int, image_size: int, *, width: int):
        super().__init__()
        self.size, self.width = image_size, width
        self.base = max(1, image_size // 4)
        self.fc = nn.Linear(latent, 2 * width * self.base * self.base)
        self.body = nn.Sequential(
            _conv_bn_relu(2 * width, 2 * width), _conv_bn_relu(2 * width, 2 * width),
            nn.Upsample(scale_factor=2), _conv_bn_relu(2 * width, width),
            nn.Upsample(scale_factor=2), _conv_bn_relu(width, width),
            nn.Conv2d(width, out_channels, 3, padding=1))

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(len(z), 2 * self.width, self.base, self.base)
        out = self.body(h)
        if out.shape[-1] != self.size:
            out = F.interpolate(out, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return torch.sigmoid(out)


class VAETracer(nn.Module):
    """A VAE whose encoder is the base tracer T_0.

    ``forward(x)`` returns (reconstruction, mu, sigma, t) where t = T_0(x) are the K encoder
    outputs. Shape: x [n, C, H, W]; t [n, K]; mu, sigma [n, K // 2].
    """

    def __init__(self, num_outputs: int, in_channels: int, image_size: int,
                 mean: Sequence[float], std: Sequence[float], *, width: int):
        super().__init__()
        if num_outputs < 2:
            raise ValueError("the tracer needs at least 2 outputs (mu and sigma)")
        self.latent = num_outputs // 2
        self.encoder = TracerEncoder(num_outputs, in_channels, image_size, mean, std, width=width)
        self.decoder = Decoder(self.latent, in_channels, image_size, width=width)

    @property
    def base_tracer(self) -> nn.Module:
        """T_0, the part that goes into the copies."""
        return self.encoder

    def split(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder outputs -> (mu, sigma); sigma = (1 + s) / 2 + 1e-3 maps Tanh's range to (0, 1]."""
        mu = t[:, :self.latent]
        sigma = 0.5 * (1.0 + t[:, self.latent:2 * self.latent]) + 1e-3
        return mu, sigma

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t = self.encoder(x)
        mu, sigma = self.split(t)
        z = mu + sigma * torch.randn_like(mu) if self.training else mu
        return self.decoder(z), mu, sigma, t
