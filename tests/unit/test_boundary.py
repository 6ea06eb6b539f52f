"""Batched Boundary attack on a linear classifier, whose minimal L2 perturbation is analytic."""
import pytest
import torch

from tracer.attacks.boundary import BatchedBoundary, _nearest
from tracer.attacks.oracle import HardLabelOracle

from conftest import linear_case


def test_walks_along_the_boundary_towards_the_minimal_l2_perturbation():
    model, x, optimal = linear_case()
    y = torch.zeros(len(x), dtype=torch.long)
    start = BatchedBoundary(HardLabelOracle(model, 2), max_iter=0).perturb(x, y)
    oracle = HardLabelOracle(model, 2)
    attack = BatchedBoundary(oracle, max_iter=100)
    x_adv = attack.perturb(x, y)
    assert (model(x_adv).argmax(1) == 1).all()
    found = (x_adv - x).flatten(1).norm(dim=1)
    initial = (start - x).flatten(1).norm(dim=1)
    assert (found >= optimal * 0.99).all()
    assert (found < initial).all()
    assert (found <= optimal * 1.1).all(), (found / optimal).tolist()
    assert attack.last_queries.sum() == oracle.queries and (attack.last_queries > 0).all()


def test_budget_per_image_is_respected_and_result_stays_adversarial():
    model, x, _ = linear_case()
    attack = BatchedBoundary(HardLabelOracle(model, 2, budget=400), max_iter=500)
    x_adv = attack.perturb(x, torch.zeros(len(x), dtype=torch.long))
    assert (attack.last_queries <= 400).all()
    assert (model(x_adv).argmax(1) == 1).all()


def test_epsilon_stop_retires_each_image_within_it_and_saves_queries():
    model, x, optimal = linear_case()
    y = torch.zeros(len(x), dtype=torch.long)
    full = BatchedBoundary(HardLabelOracle(model, 2), max_iter=100)
    full.perturb(x, y)
    eps = float(optimal.max()) * 1.5
    early = BatchedBoundary(HardLabelOracle(model, 2), max_iter=100, epsilon_stop=eps)
    x_adv = early.perturb(x, y)
    assert (model(x_adv).argmax(1) == 1).all()
    assert ((x_adv - x).flatten(1).norm(dim=1) <= eps).all()
    assert (early.last_queries < full.last_queries).all()


def test_orthogonal_step_keeps_the_distance_to_the_clean_image():
    model, x, _ = linear_case(n=3)
    attack = BatchedBoundary(HardLabelOracle(model, 2), sample_size=7)
    cur = (x + 0.1 * torch.randn_like(x)).clamp(0.2, 0.8)   # away from the clip range
    delta = torch.tensor([0.01, 0.1, 0.5])
    steps = attack._orthogonal_step(x, cur, delta, torch.Generator().manual_seed(0))
    assert steps.shape == (3, 7, *x.shape[1:])
    before = (cur - x).flatten(1).norm(dim=1)
    after = (steps - x.unsqueeze(1)).flatten(2).norm(dim=2)
    # ART's step: (cur - x + p_perp) / sqrt(1 + delta^2), |p| = delta |x - cur| before p loses
    # its part along x - cur, so the candidate lies just inside the sphere of radius |x - cur|
    shrink = torch.sqrt(1 + delta ** 2).unsqueeze(1)
    assert (after <= before.unsqueeze(1) * (1 + 1e-5)).all()
    least = before.unsqueeze(1) * torch.sqrt(1 + 0.9 * delta.unsqueeze(1) ** 2) / shrink
    assert (after >= least).all()


def test_step_sizes_adapt_to_the_success_rate():
    model, _, _ = linear_case(n=1)
    attack = BatchedBoundary(HardLabelOracle(model, 2), step_adapt=0.5)
    step = torch.ones(3)
    attack._adapt(step, torch.arange(3), torch.tensor([0.1, 0.3, 0.9]))
    assert step.tolist() == [0.5, 1.0, 2.0]


def test_nearest_ignores_candidates_that_do_not_fool():
    x = torch.zeros(1, 1, 1, 2)
    cands = torch.tensor([[[[[0.1, 0.0]]], [[[1.0, 1.0]]], [[[0.5, 0.0]]]]])
    ok = torch.tensor([[False, True, True]])
    assert torch.equal(_nearest(x, cands, ok), cands[0, 2:3])


def test_refuses_a_step_adaptation_outside_0_1():
    model, _, _ = linear_case(n=1)
    with pytest.raises(ValueError, match="step_adapt"):
        BatchedBoundary(HardLabelOracle(model, 2), step_adapt=1.5)
