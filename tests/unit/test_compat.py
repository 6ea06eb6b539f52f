import sys

import torch

from tracer._compat import apply_advertorch_shim, import_advertorch_attacks, zero_gradients


def test_shim_restores_zero_gradients_and_advertorch_imports():
    apply_advertorch_shim()
    assert hasattr(sys.modules["torch.autograd.gradcheck"], "zero_gradients")
    attacks = import_advertorch_attacks()
    for name in ("LinfPGDAttack", "CarliniWagnerL2Attack", "FABAttack", "LinfSPSAAttack"):
        assert hasattr(attacks, name)


def test_shim_is_idempotent_and_keeps_an_existing_helper():
    apply_advertorch_shim()
    first = sys.modules["torch.autograd.gradcheck"].zero_gradients
    apply_advertorch_shim()
    assert sys.modules["torch.autograd.gradcheck"].zero_gradients is first


def test_zero_gradients_zeroes_tensors_and_containers():
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    (a.sum() * 2 + b.sum()).backward()
    zero_gradients([a, (b,)])
    assert a.grad.abs().sum() == 0 and b.grad.abs().sum() == 0
    zero_gradients(torch.ones(2))  # no grad: nothing to do, no error
