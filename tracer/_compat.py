"""Compatibility shim for advertorch 0.2.3 (its last release) on torch 2.x.

advertorch's FAB attack imports ``zero_gradients`` from ``torch.autograd.gradcheck``, which torch
removed in 1.9; the import error breaks ``import advertorch.attacks`` as a whole. We restore the one
missing helper before advertorch is imported, rather than forking advertorch. Import advertorch only
through :func:`import_advertorch_attacks`.
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType

import torch


def zero_gradients(x: torch.Tensor | list | tuple) -> None:
    """Zero ``x.grad`` in place, recursing into containers (torch 1.8's behaviour)."""
    if isinstance(x, torch.Tensor):
        if x.grad is not None:
            x.grad.detach_()
            x.grad.zero_()
    elif isinstance(x, (list, tuple)):
        for elem in x:
            zero_gradients(elem)


def apply_advertorch_shim() -> None:
    """Give the module ``torch.autograd.gradcheck`` its old ``zero_gradients`` if it lacks it.

    The module is taken from ``sys.modules``: the attribute ``torch.autograd.gradcheck`` is the
    function of that name, not the module advertorch imports from.
    """
    importlib.import_module("torch.autograd.gradcheck")
    module = sys.modules["torch.autograd.gradcheck"]
    if not hasattr(module, "zero_gradients"):
        module.zero_gradients = zero_gradients


def import_advertorch_attacks() -> ModuleType:
    """Return ``advertorch.attacks``, importable on torch 2.x."""
    apply_advertorch_shim()
    return importlib.import_module("advertorch.attacks")
