"""C built from an import path, a config's ``_target_``: torchvision's architectures or a vendor's
own. (tracer.config lets no other _target_ build a model; the library resolves this one itself.)

Importing a path runs its module's code, and a manifest is untrusted, so only allow-listed paths
are built: torchvision's classification builders, and the paths the investigator names in the
environment variable ``TRACER_MODEL_TARGETS`` (comma-separated). The same check runs when a
config asks for a target and when a manifest is reloaded.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

import torchvision
from torch import nn

ENV_VAR = "TRACER_MODEL_TARGETS"
_JSON_SCALARS = (str, int, float, bool, type(None))


def allowed_targets() -> set[str]:
    """Every import path a ``_target_`` may name here."""
    builtin = {f"torchvision.models.{name}"
               for name in torchvision.models.list_models(module=torchvision.models)}
    own = {t.strip() for t in os.environ.get(ENV_VAR, "").split(",") if t.strip()}
    return builtin | own


def check_target(target: str, kwargs: dict) -> None:
    """Refuse a target off the allow-list, and keyword arguments that are not plain JSON or that
    would make Hydra build something else (a nested ``_target_``)."""
    if target not in allowed_targets():
        raise ValueError(f"model _target_ {target!r} is not allowed: use one of torchvision's "
                         f"classification builders (torchvision.models.<name>) or add it to "
                         f"the environment variable {ENV_VAR}")
    if "num_classes" in kwargs:
        raise ValueError("model.kwargs must not set num_classes: tracer sets it from the data set")
    _check_plain(kwargs, "model.kwargs")


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("_"):
                raise ValueError(f"{where}: key {k!r} is not allowed (Hydra reads _-keys)")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _JSON_SCALARS):
        raise ValueError(f"{where}: {type(value).__name__} is not a plain JSON value")


def build_target(target: str, kwargs: dict, num_classes: int, in_channels: int) -> nn.Module:
    """``target(num_classes=num_classes, **kwargs)``, its first convolution made to take
    ``in_channels`` where it takes another number."""
    check_target(target, kwargs)
    module, _, name = target.rpartition(".")
    try:
        make = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model _target_ {target!r} cannot be imported ({err})") from None
    net = make(num_classes=num_classes, **kwargs)
    if not isinstance(net, nn.Module):
        raise TypeError(f"model _target_ {target!r} built a {type(net).__name__}, not an "
                        "nn.Module")
    adapt_input_channels(net, in_channels)
    return net


def adapt_input_channels(net: nn.Module, in_channels: int) -> None:
    """Replace the first ``Conv2d`` of ``net`` by one taking ``in_channels`` (same kernel, stride,
    padding and output channels, fresh weights) if it takes another number: torchvision's
    architectures expect RGB, Fashion-MNIST is grey."""
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.in_channels == in_channels:
                return
            if module.groups != 1:
                raise ValueError(f"the first convolution {name!r} is grouped; tracer cannot "
                                 f"adapt it to {in_channels} input channels")
            new = nn.Conv2d(in_channels, module.out_channels, module.kernel_size, module.stride,
                            module.padding, module.dilation, bias=module.bias is not None,
                            padding_mode=module.padding_mode)
            parent_name, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent_name) if parent_name else net, attr, new)
            return
    raise ValueError("the model has no Conv2d whose input channels tracer could adapt")
