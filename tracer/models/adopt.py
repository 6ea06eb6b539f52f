"""Adopt a vendor's trained classifier C (``model.checkpoint=<file>``) instead of training one.

The file is a state dict: safetensors (``.safetensors``), or a ``torch.save`` file read with
``weights_only=True``; it is never unpickled. It holds either the weights of C's network alone
(what a vendor trained, fed images normalised with the data set's channel mean and std) or the
whole C as tracer writes it (``separate/base.pt``, its normalisation included).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from tracer.io import IntegrityError, load_weights, sha256_file
from tracer.models.factory import InputSpec, ModelSpec, build_backbone, build_base


class CheckpointMismatch(ValueError):
    """The checkpoint's keys or shapes are not the architecture's."""


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a safetensors or weights-only ``torch.save`` state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise IntegrityError(f"model.checkpoint {path}: not a readable safetensors file "
                                 f"({str(err).splitlines()[0][:200]})") from None
    state = load_weights(path)
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor)
                                              for k, v in state.items()):
        raise IntegrityError(f"model.checkpoint {path}: not a state dict (a mapping of names to "
                             "tensors)")
    return state


def first_mismatch(expected: dict[str, Tensor], given: dict[str, Tensor]) -> str | None:
    """The first key, in the module's order, that ``given`` lacks or has in another shape; then
    the first key ``given`` has beyond the module's; None when they fit."""
    for key, value in expected.items():
        if key not in given:
            return f"{key!r} (missing from the checkpoint)"
        if tuple(given[key].shape) != tuple(value.shape):
            return (f"{key!r} (shape {list(given[key].shape)} in the checkpoint, "
                    f"{list(value.shape)} in the model)")
    extra = [k for k in given if k not in expected]
    return f"{extra[0]!r} (not in the model)" if extra else None


def adopt_classifier(path: str | Path, model: ModelSpec, inp: InputSpec) -> nn.Sequential:
    """C built as ``model`` describes it with the weights of ``path``; raises
    :class:`CheckpointMismatch` naming the file and the first key that does not fit."""
    state = read_state_dict(path)
    net = build_backbone(model, inp)
    base = build_base(model, inp, net)
    whole = base.state_dict()
    target = base if set(state) == set(whole) else net
    wrong = first_mismatch(target.state_dict(), state)
    if wrong is not None:
        raise CheckpointMismatch(f"model.checkpoint {path}: does not fit {model.name}; first "
                                 f"key that does not match: {wrong}")
    with torch.no_grad():
        target.load_state_dict(state)
    return base.eval()


def checkpoint_record(path: str | Path) -> dict:
    """What the manifest keeps of an adopted checkpoint: where it was and its sha256."""
    return {"file": str(Path(path).resolve()), "sha256": sha256_file(path)}
