import torch

from tracer.calibration import (cross_fitted_confidence, expected_calibration_error,
                                fit_calibration)


def _synthetic(n=2000, m=5, gap=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, m, generator=g)
    source = torch.randint(0, m, (n,), generator=g)
    scores[torch.arange(n), source] += gap
    return scores, source


def test_posterior_is_a_distribution_favouring_high_scores():
    scores, source = _synthetic()
    cal = fit_calibration(scores, source)
    post = cal.posterior(scores)
    assert torch.allclose(post.sum(1), torch.ones(len(post)), atol=1e-5)
    assert (post.argmax(1) == scores.argmax(1)).float().mean() > 0.9


def test_confidence_is_calibrated_on_synthetic_scores():
    scores, source = _synthetic(gap=1.5)
    conf = cross_fitted_confidence(scores, source)
    correct = scores.argmax(1) == source
    assert expected_calibration_error(conf, correct) < 0.06
    easy, _ = _synthetic(gap=6.0)
    assert cross_fitted_confidence(easy, _).mean() > 0.95


def test_ece_of_perfect_and_overconfident_predictions():
    conf = torch.full((100,), 0.9)
    assert expected_calibration_error(conf, torch.arange(100) < 90) < 1e-6
    assert abs(expected_calibration_error(conf, torch.arange(100) < 50) - 0.4) < 1e-6
