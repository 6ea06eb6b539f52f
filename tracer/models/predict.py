"""Labels of a model over many images, batched: what the stages and the attacker's checks need."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from tracer.data import batches


@torch.no_grad()
def predict_labels(model: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 512,
                   device: torch.device | str = "cpu") -> Tensor:
    """argmax of ``model(x)`` over its last axis, batched; a CPU tensor ([n] for one model,
    [n, m] for ``TracerCopies.outputs``)."""
    out = [model(x[idx].to(device)).argmax(-1).cpu() for idx in batches(len(x), batch_size)]
    return torch.cat(out)
