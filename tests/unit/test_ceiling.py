"""Fitted scorers on the copies' readings (tracer.evaluation.ceiling)."""
import pytest
import torch

from tracer.evaluation.ceiling import (READINGS, copy_readings, fit_scorer, held_out_top1,
                                       with_comparisons)


def _readings(n: int, m: int, p: int, signal: float, seed: int = 0):
    """Random readings; the source's first one raised by ``signal``."""
    g = torch.Generator().manual_seed(seed)
    readings = torch.randn(n, m, p, generator=g)
    sources = torch.randint(m, (n,), generator=g)
    readings[torch.arange(n), sources, 0] += signal
    return readings, sources


def test_with_comparisons_adds_the_centred_reading_and_the_rank_among_copies():
    r = torch.tensor([[[1.0], [4.0], [2.0]]])
    out = with_comparisons(r)
    assert out.shape == (1, 3, 3)
    assert torch.equal(out[0, :, 0], torch.tensor([1.0, 4.0, 2.0]))
    assert torch.allclose(out[0, :, 1], torch.tensor([-4 / 3, 5 / 3, -1 / 3]))
    assert torch.equal(out[0, :, 2], torch.tensor([0.0, 1.0, 0.5]))


def test_a_fitted_scorer_finds_the_reading_that_marks_the_source():
    readings, sources = _readings(300, 5, 4, signal=4.0)
    scorer = fit_scorer(readings, sources)
    fresh, fresh_sources = _readings(300, 5, 4, signal=4.0, seed=1)
    with torch.no_grad():
        assert (scorer(fresh).argmax(1) == fresh_sources).float().mean() > 0.95
    # the weight on the marking reading dominates the others'
    w = scorer.net.weight.detach().abs().flatten()
    assert w[0] > 3 * w[1:].max()


def test_held_out_top1_reads_chance_where_the_readings_say_nothing():
    informative = held_out_top1(*_readings(200, 5, 4, signal=4.0), folds=4)
    blind = held_out_top1(*_readings(200, 5, 4, signal=0.0), folds=4)
    assert informative > 0.9
    assert blind < 0.4          # chance is 0.2; 200 examples keep it within a few points
    # examples from elsewhere may teach the fit, the held-out ones are still scored alone
    also = _readings(400, 5, 4, signal=4.0, seed=2)
    assert held_out_top1(*_readings(40, 5, 4, signal=4.0), folds=4, also=also) > 0.9


def test_copy_readings_reads_every_copy_with_projection_keys_only():
    from conftest import tiny_copies
    copies = tiny_copies(keying="projection")
    x = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    readings = copy_readings(copies, x, batch_size=3)
    assert readings.shape == (7, copies.num_copies, 3 * len(READINGS))
    assert torch.isfinite(readings).all()
    # the copies' mean is taken out of the second block
    p = len(READINGS)
    assert torch.allclose(readings[:, :, p:2 * p].mean(1), torch.zeros(7, p), atol=1e-5)
    with pytest.raises(ValueError, match="projection keys"):
        copy_readings(tiny_copies(keying="permutation"), x)


def test_bad_input_is_refused():
    readings, sources = _readings(10, 3, 2, signal=1.0)
    with pytest.raises(ValueError, match=r"\[n, m, p\]"):
        fit_scorer(readings[0], sources)
    with pytest.raises(ValueError, match="index the 3 copies"):
        fit_scorer(readings, sources + 3)
    with pytest.raises(ValueError, match="hidden"):
        fit_scorer(readings, sources, hidden=-1)
    with pytest.raises(ValueError, match="folds"):
        held_out_top1(readings, sources, folds=11)
