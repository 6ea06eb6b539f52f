"""The frozen inference model black-box views query: the eager model's function, or the eager
model itself where tracing would change it."""
import torch
from torch import nn

from tracer.attacks.oracle import HardLabelOracle
from tracer.models.inference import frozen


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3)).eval()


class BatchBaked(nn.Module):
    """Reshapes by the traced batch size: tracing bakes the size in, so another one breaks."""

    def forward(self, x):
        return x.flatten(1).view(len(x), -1)[:, :3] * 1.0 + (len(x) == 5)


def test_frozen_model_gives_the_eager_outputs_on_any_batch_size():
    net = small_net()
    x = torch.rand(5, 1, 8, 8)
    fast = frozen(net, x)
    assert isinstance(fast, torch.jit.ScriptModule)
    for n in (1, 7, 64):
        z = torch.rand(n, 1, 8, 8)
        assert torch.allclose(fast(z), net(z), atol=1e-5)


def test_a_model_whose_trace_depends_on_the_batch_size_stays_eager():
    model = BatchBaked().eval()
    assert frozen(model, torch.rand(5, 1, 8, 8)) is model


def test_training_modules_and_plain_functions_are_left_alone():
    net = small_net().train()
    assert frozen(net, torch.rand(4, 1, 8, 8)) is net

    def f(x):
        return x.flatten(1)[:, :3]

    assert frozen(f, torch.rand(4, 1, 8, 8)) is f


def test_oracle_answers_from_the_frozen_model_and_counts_every_row():
    net = small_net()
    oracle = HardLabelOracle(net, 3, budget=100)
    oracle.reset(1)
    x = torch.rand(9, 1, 8, 8)
    assert torch.equal(oracle(x), net(x).argmax(1))
    assert isinstance(oracle._fast, torch.jit.ScriptModule) and oracle.queries == 9
