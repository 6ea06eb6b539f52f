"""Batched HopSkipJump against a linear classifier, where the minimal L2 perturbation is analytic."""
import pytest
import torch
from torch import nn

from tracer.attacks.hsja import BatchedHopSkipJump, _rank_within_owner
from tracer.attacks.oracle import HardLabelOracle


class Linear2(nn.Module):
    """Label 1 iff w . (x - c) > 0; distance of x to the boundary: |w . (x - c)| / |w|."""

    def __init__(self, w: torch.Tensor, c: float = 0.5):
        super().__init__()
        self.w, self.c = w.flatten(), c

    def forward(self, x):
        s = (x.flatten(1) - self.c) @ self.w
        return torch.stack([torch.zeros_like(s), s], dim=1)


def _setup(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(64, generator=g)
    model = Linear2(w)
    # clean images in class 0, around the middle of the pixel range (no clipping at the optimum)
    x = 0.5 + 0.05 * torch.randn(n, 1, 8, 8, generator=g)
    s = (x.flatten(1) - 0.5) @ w
    x = x - ((s.clamp_min(0) + 0.2) / w.norm() ** 2).view(-1, 1, 1, 1) * w.view(1, 1, 8, 8)
    dist = -((x.flatten(1) - 0.5) @ w) / w.norm()
    return model, x.clamp(0, 1), dist


def test_reaches_near_minimal_l2_perturbation_of_a_linear_model():
    model, x, optimal = _setup()
    oracle = HardLabelOracle(model, 2)
    attack = BatchedHopSkipJump(oracle, max_iter=30, max_eval=500, init_eval=50,
                                project_final=True)
    x_adv = attack.perturb(x, torch.zeros(len(x), dtype=torch.long))
    assert (model(x_adv).argmax(1) == 1).all()
    found = (x_adv - x).flatten(1).norm(dim=1)
    assert (found >= optimal * 0.99).all()
    assert (found <= optimal * 1.15).all(), (found / optimal).tolist()
    assert attack.last_queries.sum() == oracle.queries and (attack.last_queries > 0).all()


def test_art_order_ends_one_step_past_the_boundary():
    model, x, optimal = _setup()
    attack = BatchedHopSkipJump(HardLabelOracle(model, 2), max_iter=10, max_eval=200,
                                init_eval=50)
    x_adv = attack.perturb(x, torch.zeros(len(x), dtype=torch.long))
    assert (model(x_adv).argmax(1) == 1).all()
    assert ((x_adv - x).flatten(1).norm(dim=1) > optimal).all()


def test_budget_per_image_is_respected_and_result_stays_adversarial():
    model, x, _ = _setup()
    oracle = HardLabelOracle(model, 2, budget=300)
    attack = BatchedHopSkipJump(oracle, max_iter=50, max_eval=200, init_eval=50)
    x_adv = attack.perturb(x, torch.zeros(len(x), dtype=torch.long))
    assert (attack.last_queries <= 300).all()
    assert (model(x_adv).argmax(1) == 1).all()


def test_same_seed_same_result():
    model, x, _ = _setup(n=3)
    y = torch.zeros(3, dtype=torch.long)
    a = BatchedHopSkipJump(HardLabelOracle(model, 2), max_iter=5, seed=7).perturb(x, y)
    b = BatchedHopSkipJump(HardLabelOracle(model, 2), max_iter=5, seed=7).perturb(x, y)
    assert torch.equal(a, b)


def test_image_without_adversarial_start_comes_back_unchanged():
    model = Linear2(torch.ones(64), c=2.0)  # nothing in [0, 1] reaches class 1
    x = torch.rand(2, 1, 8, 8)
    attack = BatchedHopSkipJump(HardLabelOracle(model, 2), init_size=5)
    assert torch.equal(attack.perturb(x, torch.zeros(2, dtype=torch.long)), x)


def test_rank_within_owner():
    owner = torch.tensor([3, 1, 3, 3, 1, 0])
    assert _rank_within_owner(owner).tolist() == [0, 0, 1, 2, 1, 0]
