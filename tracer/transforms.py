"""Image corruptions an honest channel or an evasive attacker applies: Gaussian noise, JPEG
compression, small shifts; and those that no innocent set holds, for checking a threshold on
inputs its calibration never saw (tracer.evaluation.unseen): blur, contrast, brightness, salt
and pepper, uniform and sign noise, a mirror image, fewer grey levels, a lower resolution.
Images [n, C, H, W] in [0, 1] in, the same shape and range out."""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from tracer.seeding import derived_seed


def _stream(seed: int, purpose: str) -> torch.Generator:
    """A generator of its own for each kind of noise (tracer.seeding), never the one the
    tracer's projection was drawn from."""
    return torch.Generator().manual_seed(derived_seed(seed, purpose))


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def gaussian_noise(x: Tensor, std: float, seed: int = 0) -> Tensor:
    """``x`` plus N(0, std^2) per pixel, clipped to [0, 1]."""
    _positive("gaussian noise std", std)
    return (x + std * torch.randn(x.shape, generator=_stream(seed, "gaussian_noise"))).clamp(0, 1)


def uniform_noise(x: Tensor, half_width: float, seed: int = 0) -> Tensor:
    """``x`` plus U(-half_width, half_width) per pixel, clipped to [0, 1]."""
    _positive("uniform noise half width", half_width)
    u = torch.rand(x.shape, generator=_stream(seed, "uniform_noise"))
    return (x + half_width * (2 * u - 1)).clamp(0, 1)


def sign_noise(x: Tensor, size: float, seed: int = 0) -> Tensor:
    """``x`` plus or minus ``size`` per pixel at random (the shape of an Linf attack's step),
    clipped to [0, 1]."""
    _positive("sign noise size", size)
    flips = torch.randint(0, 2, x.shape, generator=_stream(seed, "sign_noise"))
    return (x + size * (2 * flips - 1)).clamp(0, 1)


def salt_and_pepper(x: Tensor, share: float, seed: int = 0) -> Tensor:
    """A ``share`` of the pixels set to 0 or 1, half each."""
    if not 0 < share < 1:
        raise ValueError(f"salt and pepper share must be in (0, 1), got {share}")
    u = torch.rand(x.shape, generator=_stream(seed, "salt_and_pepper"))
    return torch.where(u < share / 2, 0.0, torch.where(u > 1 - share / 2, 1.0, x))


def box_blur(x: Tensor, size: int) -> Tensor:
    """The mean over each pixel's ``size`` x ``size`` neighbourhood (odd size; borders
    replicated), channel by channel."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"blur size must be odd and positive, got {size}")
    c = x.shape[1]
    kernel = torch.full((c, 1, size, size), 1.0 / size ** 2, dtype=x.dtype)
    return F.conv2d(F.pad(x, [size // 2] * 4, mode="replicate"), kernel, groups=c)


def contrast(x: Tensor, factor: float) -> Tensor:
    """Pixel values pulled toward (factor < 1) or pushed from (> 1) mid-grey 0.5."""
    _positive("contrast factor", factor)
    return (0.5 + factor * (x - 0.5)).clamp(0, 1)


def brightness(x: Tensor, offset: float) -> Tensor:
    """``offset`` added to every pixel, clipped to [0, 1]."""
    return (x + offset).clamp(0, 1)


def mirror(x: Tensor) -> Tensor:
    """Each image flipped left to right."""
    return x.flip(-1)


def quantize(x: Tensor, levels: int) -> Tensor:
    """``levels`` grey levels per channel, evenly spaced over [0, 1]."""
    if levels < 2:
        raise ValueError(f"quantize needs at least 2 levels, got {levels}")
    return (x * (levels - 1)).round() / (levels - 1)


def downsample(x: Tensor, factor: int) -> Tensor:
    """Down to 1/``factor`` of the resolution and back up, bilinearly: a low-resolution copy."""
    if factor < 2:
        raise ValueError(f"downsample factor must be at least 2, got {factor}")
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, h // factor), max(1, w // factor)), mode="bilinear",
                          align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def jpeg(x: Tensor, quality: int) -> Tensor:
    """Each image through a JPEG encode and decode at ``quality`` (1-95), as PIL does it."""
    if not 1 <= quality <= 95:
        raise ValueError(f"jpeg quality must be in 1..95, got {quality}")
    out = []
    for img in x:
        arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255
        out.append(torch.from_numpy(back.reshape(arr.shape)).permute(2, 0, 1))
    return torch.stack(out) if out else x.clone()


def shift(x: Tensor, pixels: int) -> Tensor:
    """Translate every image by ``pixels`` right and down, filling the border by replication."""
    if pixels == 0:
        return x.clone()
    padded = F.pad(x, (pixels, 0, pixels, 0), mode="replicate")
    return padded[..., : x.shape[-2], : x.shape[-1]]
