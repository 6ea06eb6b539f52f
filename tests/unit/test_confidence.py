import torch

from tracer.confidence import cross_fitted_confidence, expected_calibration_error, fit_densities
from tracer.tracing import Scores


def _synthetic(n=2000, m=5, gap=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, m, generator=g)
    source = torch.randint(0, m, (n,), generator=g)
    scores[torch.arange(n), source] += gap
    return Scores(scores), source


def test_posterior_is_a_distribution_favouring_high_scores():
    scores, source = _synthetic()
    cal = fit_densities(scores, source)
    post = cal.posterior(scores)
    assert torch.allclose(post.sum(1), torch.ones(len(post)), atol=1e-5)
    assert (post.argmax(1) == scores.value.argmax(1)).float().mean() > 0.9


def test_confidence_is_calibrated_on_synthetic_scores():
    scores, source = _synthetic(gap=1.5)
    conf = cross_fitted_confidence(scores, source)
    correct = scores.value.argmax(1) == source
    assert expected_calibration_error(conf, correct) < 0.06
    easy, _ = _synthetic(gap=6.0)
    assert cross_fitted_confidence(easy, _).mean() > 0.95


def test_ece_of_perfect_and_overconfident_predictions():
    conf = torch.full((100,), 0.9)
    assert expected_calibration_error(conf, torch.arange(100) < 90) < 1e-6
    assert abs(expected_calibration_error(conf, torch.arange(100) < 50) - 0.4) < 1e-6


def test_eligible_and_ineligible_candidates_have_densities_of_their_own():
    # the source is always eligible; innocents are eligible only at low values
    g = torch.Generator().manual_seed(1)
    value = torch.rand(400, 3, generator=g)
    source = torch.zeros(400, dtype=torch.long)
    eligible = value < 0.3
    eligible[:, 0] = True
    post = fit_densities(Scores(value, eligible), source).posterior(Scores(value, eligible))
    # an eligible innocent at a value the source also takes is less likely the source than it
    assert (post.argmax(1) == 0).float().mean() > 0.9
