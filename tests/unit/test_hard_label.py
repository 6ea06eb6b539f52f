"""What every batched decision-based attack of ours shares (tracer.attacks.hard_label)."""
import pytest
import torch

from tracer.attacks.boundary import BatchedBoundary
from tracer.attacks.hard_label import _rank_within_owner
from tracer.attacks.hsja import BatchedHopSkipJump
from tracer.attacks.oracle import HardLabelOracle

from conftest import Linear2, linear_case

ATTACKS = [BatchedHopSkipJump, BatchedBoundary]


@pytest.mark.parametrize("attack", ATTACKS)
def test_same_seed_same_result(attack):
    model, x, _ = linear_case(n=3)
    y = torch.zeros(3, dtype=torch.long)
    a = attack(HardLabelOracle(model, 2), max_iter=5, seed=7).perturb(x, y)
    b = attack(HardLabelOracle(model, 2), max_iter=5, seed=7).perturb(x, y)
    assert torch.equal(a, b)


@pytest.mark.parametrize("attack", ATTACKS)
def test_image_without_adversarial_start_comes_back_unchanged(attack):
    model = Linear2(torch.ones(64), c=2.0)  # nothing in [0, 1] reaches class 1
    x = torch.rand(2, 1, 8, 8)
    out = attack(HardLabelOracle(model, 2), init_size=5).perturb(
        x, torch.zeros(2, dtype=torch.long))
    assert torch.equal(out, x)


def test_rank_within_owner():
    owner = torch.tensor([3, 1, 3, 3, 1, 0])
    assert _rank_within_owner(owner).tolist() == [0, 0, 1, 2, 1, 0]
