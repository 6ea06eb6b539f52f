"""Our own attacks (QEBA, SurFree, NES, Bandits, Square) on a linear classifier, where the minimal
perturbation is analytic, and on their budgets and threat models."""
import pytest
import torch

from tracer.attacks import (NES, QEBA, AdvertorchAttack, Bandits, BatchedSquare, HardLabelOracle,
                            ScoreOracle, SurFree)
from tracer.attacks.score_based import _exponentiated_gradient
from tracer.attacks.square import window_share
from tracer.models.common_directions import square_windows
from tracer.attacks.surfree import _dct_matrix, _low_frequency_noise

from conftest import linear_case

Y0 = torch.zeros(6, dtype=torch.long)


def _l2(a, b):
    return (a - b).flatten(1).norm(dim=1)


@pytest.mark.parametrize("make", [
    lambda o: QEBA(o, ratio=4, max_iter=30, max_eval=300, init_eval=50, project_final=True),
    lambda o: SurFree(o, max_iter=150),
], ids=["qeba", "surfree"])
def test_decision_attacks_approach_the_minimal_l2_perturbation(make):
    model, x, optimal = linear_case(smooth=True)
    oracle = HardLabelOracle(model, 2)
    attack = make(oracle)
    x_adv = attack.perturb(x, Y0)
    assert (model(x_adv).argmax(1) == 1).all()
    ratio = _l2(x_adv, x) / optimal
    assert (ratio >= 0.99).all() and (ratio <= 1.25).all(), ratio.tolist()
    assert attack.last_queries.sum() == oracle.queries


def test_surfree_never_moves_further_from_the_clean_image():
    # From the same start, SurFree's distance never grows: each move is to a nearer circle point.
    model, x, optimal = linear_case(smooth=False)
    short = SurFree(HardLabelOracle(model, 2), max_iter=5).perturb(x, Y0)
    longer = SurFree(HardLabelOracle(model, 2), max_iter=60).perturb(x, Y0)
    assert (_l2(longer, x) <= _l2(short, x) + 1e-5).all()
    assert (_l2(longer, x) >= optimal * 0.99).all()


@pytest.mark.parametrize("cls", [QEBA, SurFree])
def test_decision_attacks_stay_within_budget_and_adversarial(cls):
    model, x, _ = linear_case()
    oracle = HardLabelOracle(model, 2, budget=250)
    attack = cls(oracle, max_iter=100)
    x_adv = attack.perturb(x, Y0)
    assert (attack.last_queries <= 250).all()
    assert (model(x_adv).argmax(1) == 1).all()


# A random w has no spatial structure, so Bandits' data prior gets one-pixel tiles here.
def _spsa(oracle, eps, lr, max_iter):
    # advertorch's SPSA through our adapter: its margin loss must be per example (a summed loss
    # mixed the images' probes and left most images unperturbed)
    return AdvertorchAttack(oracle, "LinfSPSAAttack", loss="margin", eps=eps, lr=lr, delta=0.01,
                            nb_iter=15, nb_sample=128, max_batch_size=128)


@pytest.mark.parametrize("cls", [NES, lambda o, **kw: Bandits(o, tile=1, **kw), _spsa],
                         ids=["nes", "bandits", "spsa"])
def test_score_attacks_succeed_inside_an_linf_ball_just_above_the_minimum(cls):
    model, x, _ = linear_case()
    w = model.w
    linf_min = -((x.flatten(1) - 0.5) @ w) / w.abs().sum()
    eps = float(linf_min.max()) * 1.5
    oracle = ScoreOracle(model, 2, budget=4000)
    attack = cls(oracle, eps=eps, lr=eps / 10, max_iter=2000)
    x_adv = attack.perturb(x, Y0)
    assert (model(x_adv).argmax(1) == 1).all()
    assert ((x_adv - x).abs().flatten(1).max(1).values <= eps + 1e-6).all()
    assert 0 <= x_adv.min() and x_adv.max() <= 1
    assert (attack.last_queries <= 4000).all() and attack.last_queries.sum() == oracle.queries


@pytest.mark.parametrize("cls", [NES, Bandits])
def test_score_attacks_cannot_cross_a_boundary_outside_their_ball(cls):
    model, x, _ = linear_case()
    linf_min = -((x.flatten(1) - 0.5) @ model.w) / model.w.abs().sum()
    eps = float(linf_min.min()) * 0.9
    attack = cls(ScoreOracle(model, 2, budget=600), eps=eps, lr=eps / 5, max_iter=100)
    x_adv = attack.perturb(x, Y0)
    assert (model(x_adv).argmax(1) == 0).all()
    assert (attack.last_queries <= 600).all()


def test_attacks_refuse_the_wrong_view_and_bad_parameters():
    model, _, _ = linear_case()
    with pytest.raises(TypeError, match="HardLabelOracle"):
        SurFree(ScoreOracle(model, 2))
    with pytest.raises(TypeError, match="ScoreOracle"):
        NES(HardLabelOracle(model, 2))
    with pytest.raises(ValueError, match="even"):
        NES(ScoreOracle(model, 2), samples=3)
    with pytest.raises(ValueError, match="ratio"):
        QEBA(HardLabelOracle(model, 2), ratio=0)
    with pytest.raises(ValueError, match="freq_range"):
        SurFree(HardLabelOracle(model, 2), freq_range=0)


def test_dct_matrix_is_orthonormal_and_low_frequency_noise_lives_in_its_corner():
    d = _dct_matrix(8, torch.device("cpu"))
    assert torch.allclose(d @ d.T, torch.eye(8), atol=1e-5)
    z = _low_frequency_noise(3, torch.Size([1, 8, 8]), 0.5, torch.Generator().manual_seed(0),
                             torch.device("cpu")).view(3, 1, 8, 8)
    coef = d @ z @ d.T
    assert torch.allclose(coef[..., 4:, :], torch.zeros(1), atol=1e-5)
    assert torch.allclose(coef[..., :4, :4].abs(), torch.ones(1), atol=1e-5)


def test_exponentiated_gradient_moves_the_prior_towards_the_gradient_and_stays_in_range():
    prior = torch.zeros(4)
    g = torch.tensor([1.0, -1.0, 1e6, -1e6])
    new = _exponentiated_gradient(prior, g, lr=0.5)
    assert new[0] > 0 > new[1] and torch.isfinite(new).all() and new.abs().max() <= 1


def _linf_minimum(model, x):
    return -((x.flatten(1) - 0.5) @ model.w) / model.w.abs().sum()


def test_square_succeeds_inside_an_linf_ball_just_above_the_minimum():
    model, x, _ = linear_case(smooth=True)
    eps = float(_linf_minimum(model, x).max()) * 1.5
    oracle = ScoreOracle(model, 2, budget=3000)
    attack = BatchedSquare(oracle, eps=eps, max_iter=2000)
    x_adv = attack.perturb(x, Y0)
    assert (model(x_adv).argmax(1) == 1).all()
    assert ((x_adv - x).abs().flatten(1).max(1).values <= eps + 1e-6).all()
    assert 0 <= x_adv.min() and x_adv.max() <= 1
    assert (attack.last_queries <= 3000).all() and attack.last_queries.sum() == oracle.queries


def test_square_cannot_cross_a_boundary_outside_its_ball_and_spends_one_query_an_iteration():
    model, x, _ = linear_case(smooth=True)
    eps = float(_linf_minimum(model, x).min()) * 0.9
    attack = BatchedSquare(ScoreOracle(model, 2), eps=eps, max_iter=50)
    x_adv = attack.perturb(x, Y0)
    assert (model(x_adv).argmax(1) == 0).all()
    # the stripes, then one candidate per iteration: the current margin is never asked again
    assert (attack.last_queries == 51).all()
    capped = BatchedSquare(ScoreOracle(model, 2, budget=20), eps=eps, max_iter=50)
    capped.perturb(x, Y0)
    assert (capped.last_queries == 20).all()


def test_square_only_keeps_changes_that_raise_the_margin():
    model, x, _ = linear_case(smooth=True)
    eps = float(_linf_minimum(model, x).min()) * 0.9

    def margin_after(budget):
        torch.manual_seed(0)   # the same stripes: the chunk's seed draws them
        x_adv = BatchedSquare(ScoreOracle(model, 2, budget=budget), eps=eps,
                              max_iter=40).perturb(x, Y0)
        out = model(x_adv)
        return out[:, 1] - out[:, 0]

    stripes, searched = margin_after(1), margin_after(None)   # a budget of 1: the stripes alone
    assert (searched >= stripes).all() and (searched > stripes).any()


def test_square_window_shrinks_on_the_authors_schedule():
    assert window_share(0.8, 0, 2000) == 0.8
    assert window_share(0.8, 2, 2000) == 0.8            # 10 of 10,000: still the first window
    assert window_share(0.8, 3, 2000) == 0.4
    assert window_share(0.8, 150, 2000) == pytest.approx(0.8 / 16)   # 750 of 10,000
    assert window_share(0.8, 1999, 2000) == pytest.approx(0.8 / 512)


def test_square_windows_are_squares_inside_the_image_and_candidates_always_change():
    gen = torch.Generator().manual_seed(0)
    window = square_windows(50, 8, 8, 3, gen)
    assert window.shape == (50, 1, 8, 8) and (window.flatten(1).sum(1) == 9).all()
    rows, cols = window.any(dim=3).squeeze(1), window.any(dim=2).squeeze(1)
    assert (rows.sum(1) == 3).all() and (cols.sum(1) == 3).all()
    model, x, _ = linear_case()
    attack = BatchedSquare(ScoreOracle(model, 2), eps=0.1)
    signs = torch.ones(6, 1, 1, 1) * 0.1
    best = torch.where(window[:6], x + signs, x)   # already holds +eps on the window
    cand = attack._candidates(x, best, window[:6], signs)
    assert not (cand == best).flatten(1).all(dim=1).any()
    assert torch.allclose(cand[window[:6].expand_as(cand)], (x - 0.1)[window[:6].expand_as(x)])


def test_square_refuses_the_wrong_view_and_bad_parameters():
    model, _, _ = linear_case()
    with pytest.raises(TypeError, match="ScoreOracle"):
        BatchedSquare(HardLabelOracle(model, 2))
    with pytest.raises(ValueError, match="p_init"):
        BatchedSquare(ScoreOracle(model, 2), p_init=0)
