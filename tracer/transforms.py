"""Image corruptions an honest channel or an evasive attacker applies: Gaussian noise, JPEG
compression, small shifts. Images [n, C, H, W] in [0, 1] in, the same shape and range out."""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from tracer.seeding import derived_seed


def gaussian_noise(x: Tensor, std: float, seed: int = 0) -> Tensor:
    """``x`` plus N(0, std^2) per pixel, clipped to [0, 1]; the noise comes from its own stream
    of ``seed`` (tracer.seeding), never from the one the tracer's projection was drawn from."""
    if std <= 0:
        raise ValueError(f"gaussian noise std must be positive, got {std}")
    g = torch.Generator().manual_seed(derived_seed(seed, "gaussian_noise"))
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


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
