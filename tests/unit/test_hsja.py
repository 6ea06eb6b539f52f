"""Batched HopSkipJump against a linear classifier, where the minimal L2 perturbation is analytic."""
import torch

from tracer.attacks.hsja import BatchedHopSkipJump
from tracer.attacks.oracle import HardLabelOracle

from conftest import linear_case as _setup


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


def test_epsilon_retires_each_image_once_within_it_and_saves_queries():
    model, x, optimal = _setup()
    y = torch.zeros(len(x), dtype=torch.long)
    full = BatchedHopSkipJump(HardLabelOracle(model, 2), max_iter=30, max_eval=200, init_eval=50)
    full.perturb(x, y)
    eps = float(optimal.max()) * 1.5
    early = BatchedHopSkipJump(HardLabelOracle(model, 2), max_iter=30, max_eval=200,
                               init_eval=50, epsilon=eps)
    x_adv = early.perturb(x, y)
    assert (model(x_adv).argmax(1) == 1).all()
    assert ((x_adv - x).flatten(1).norm(dim=1) <= eps).all()
    assert (early.last_queries < full.last_queries).all()


def test_epsilon_spends_no_gradient_estimate_on_a_boundary_point_already_within_it():
    model, x, optimal = _setup()
    eps = float(optimal.max()) * 1.5
    attack = BatchedHopSkipJump(HardLabelOracle(model, 2), max_iter=30, max_eval=200,
                                init_eval=50, epsilon=eps)
    estimated_at = []
    estimate = attack._gradient_direction

    def spy(cur, idx, *args):
        estimated_at.append((cur - x[idx]).flatten(1).norm(dim=1))
        return estimate(cur, idx, *args)

    attack._gradient_direction = spy
    x_adv = attack.perturb(x, torch.zeros(len(x), dtype=torch.long))
    assert estimated_at, "the attack never estimated a gradient: the test proves nothing"
    assert (torch.cat(estimated_at) > eps).all()
    assert ((x_adv - x).flatten(1).norm(dim=1) <= eps).all()


def test_step_queries_only_points_inside_the_pixel_range():
    model, x, _ = _setup(n=3)
    oracle = HardLabelOracle(model, 2)
    queried = []
    answer = oracle._model

    def spy(rows):
        queried.append(rows)
        return answer(rows)

    oracle._model = spy
    BatchedHopSkipJump(oracle, max_iter=5, max_eval=100, init_eval=20).perturb(
        x, torch.zeros(3, dtype=torch.long))
    rows = torch.cat(queried)
    assert rows.min() >= 0 and rows.max() <= 1
