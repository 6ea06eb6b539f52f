"""Decide or abstain: the threshold on innocent sets, and the rates measured at it."""

import math

import pytest
import torch

from tracer.abstention import (allowed_accusations, choose_threshold, detection_rate,
                               false_accusation_rate, halves, operating_curve, rate_upper_bound,
                               split_stability, wrong_accusation_rate)
from tracer.innocent import INNOCENT_SETS, InnocentSpec, innocent_evidence
from tracer.tracing import Scores
from tracer.transforms import gaussian_noise, jpeg


def _scores(tops):
    """One row per top score: [top, 0.0] (no ties unless top == 0)."""
    return Scores(torch.tensor([[t, 0.0] for t in tops]))


def test_threshold_allows_at_most_the_target_share_of_every_innocent_set():
    a = _scores([5.0, 1.0, 0.5, 0.4] + [0.1] * 96)   # 100 images: 1% = one accusation allowed
    b = _scores([0.9] * 2 + [0.2] * 98)
    t = choose_threshold({"a": a, "b": b}, 0.01)
    assert 1.0 < t < 1.0 + 1e-6
    assert false_accusation_rate(a, t) <= 0.01 and false_accusation_rate(b, t) == 0.0
    assert false_accusation_rate(a, 1.0) > 0.01   # the smallest such threshold


def test_no_score_bound_when_innocents_are_never_accused_and_ties_never_accuse():
    tied = Scores(torch.tensor([[3.0, 3.0], [2.0, 2.0]]))
    assert choose_threshold({"tied": tied}, 0.0) == -math.inf
    assert false_accusation_rate(tied, None) == 0.0
    with pytest.raises(ValueError, match="empty"):
        choose_threshold({"none": Scores(torch.zeros(0, 2))}, 0.01)
    with pytest.raises(ValueError, match="max_false_accusation"):
        choose_threshold({"a": tied}, 1.0)


def test_rate_upper_bound_is_clopper_pearsons():
    # none seen in n: the bound solves (1 - p)^n = 1 - confidence
    assert rate_upper_bound(0, 200, 0.8) == pytest.approx(1 - 0.2 ** (1 / 200))
    # k seen: P(Binomial(n, bound) <= k) = 1 - confidence
    from scipy.stats import binom
    ub = rate_upper_bound(3, 500, 0.95)
    assert binom.cdf(3, 500, ub) == pytest.approx(0.05, abs=1e-9)
    assert rate_upper_bound(7, 7, 0.9) == 1.0
    with pytest.raises(ValueError, match="confidence"):
        rate_upper_bound(0, 10, 1.0)
    with pytest.raises(ValueError, match="accused"):
        rate_upper_bound(11, 10, 0.8)


def test_allowed_accusations_keep_the_upper_bound_within_the_target():
    assert allowed_accusations(200, 0.01) == 2                 # the rate seen
    assert allowed_accusations(200, 0.01, 0.8) == 0            # bound(0 of 200) = 0.80%
    assert allowed_accusations(100, 0.01, 0.8) == 0            # bound(0 of 100) = 1.6%: too few
    k = allowed_accusations(2000, 0.01, 0.8)
    assert rate_upper_bound(k, 2000, 0.8) <= 0.01 < rate_upper_bound(k + 1, 2000, 0.8)
    assert 10 <= k < 20


def test_threshold_with_a_confidence_accuses_fewer_innocents():
    a = _scores([5.0, 1.0, 0.5, 0.4] + [0.1] * 196)   # 200 images
    plain = choose_threshold({"a": a}, 0.01)
    bounded = choose_threshold({"a": a}, 0.01, confidence=0.8)
    assert 0.5 < plain < 1.0 and 5.0 < bounded < 5.0 + 1e-5
    assert false_accusation_rate(a, bounded) == 0.0


def test_split_stability_counts_splits_whose_held_out_half_exceeds_the_target():
    # 4 of 200 innocents score high: a half holding 3 or more of them exceeds 1% (2 of 100)
    inn = _scores([5.0, 4.0, 3.0, 2.0] + [0.1] * 196)
    ev = (Scores(torch.tensor([[6.0, 0.0], [0.5, 0.0]])), torch.tensor([0, 0]))
    plain = split_stability({"a": inn}, {"pgd": ev}, 0.01, None, splits=50)
    bound = split_stability({"a": inn}, {"pgd": ev}, 0.01, 0.8, splits=50)
    assert plain["splits"] == 50 and 0 < plain["share_above_target"] < 1
    # with the bound no calibration half may accuse anyone: fewer splits exceed the target, and
    # only a half that got all four high scores can reach 4%
    assert bound["share_above_target"] < plain["share_above_target"]
    assert bound["worst_held_out_max"] <= 0.04
    for result in (plain, bound):
        d = result["detection"]["pgd"]          # the 6.0 example is named at every threshold
        assert 0.5 <= d["min"] <= d["mean"] <= d["max"] <= 1.0
    with pytest.raises(ValueError, match="splits"):
        split_stability({"a": inn}, {}, 0.01, splits=0)


def test_detection_and_wrong_accusation_at_a_threshold():
    scores = Scores(torch.tensor([[5.0, 1.0], [0.5, 0.2], [1.0, 4.0], [0.0, 6.0]]))
    source = torch.tensor([0, 0, 0, 1])
    assert detection_rate(scores, source, 2.0) == 0.5             # rows 0 and 3
    assert wrong_accusation_rate(scores, source, 2.0) == 0.25     # row 2 names copy 1
    assert detection_rate(scores, source, None) == 0.75
    curve = operating_curve({"clean": _scores([0.1, 3.0])}, {"hsja": (scores, source)}, [0.0, 5.0])
    assert curve[0]["false_accusation_rate"]["clean"] == 1.0
    assert curve[1]["false_accusation_rate"]["clean"] == 0.0
    assert curve[1]["detection_rate"]["hsja"] == 0.5


def test_an_ineligible_top_is_never_accused_and_sets_no_threshold():
    # the innocents' high values all sit at ineligible candidates (copies that agree with C)
    value = torch.tensor([[5.0, 0.1]] * 50 + [[0.0, 0.3]] * 50)
    eligible = torch.tensor([[False, True]] * 100)
    inn = Scores(value, eligible)
    t = choose_threshold({"a": inn}, 0.0)
    assert 0.3 < t < 0.3 + 1e-6          # above the eligible 0.3s, far below the 5.0s
    assert false_accusation_rate(inn, t) == 0.0
    assert false_accusation_rate(inn, None) == 1.0     # without a threshold: named anyway


def test_a_top_that_fails_the_key_test_is_never_named_and_sets_no_threshold():
    # the innocents' tops are high but no unsold key is beaten: the key test alone abstains,
    # and the threshold that comes back is no score bound, which still abstains on them
    value = torch.tensor([[5.0, 0.1]] * 60 + [[0.2, 0.0]] * 40)
    vouched = torch.tensor([[False, True]] * 60 + [[True, False]] * 40)
    inn = Scores(value, vouched=vouched)
    assert inn.top()[2].tolist() == [False] * 60 + [True] * 40
    t = choose_threshold({"a": inn}, 0.0)
    assert 0.2 < t < 0.2 + 1e-6                          # only the vouched 0.2s bound it
    assert false_accusation_rate(inn, t) == 0.0
    loose = choose_threshold({"a": inn.select(torch.arange(60))}, 0.0)
    assert loose == -math.inf
    assert false_accusation_rate(inn.select(torch.arange(60)), loose) == 0.0
    assert false_accusation_rate(inn, -math.inf) == pytest.approx(0.4)  # the vouched 0.2s
    assert false_accusation_rate(inn, None) == 1.0       # the top-1 reading names every one
    src = torch.zeros(100, dtype=torch.long)
    assert wrong_accusation_rate(inn, src, -math.inf) == 0.0
    assert detection_rate(inn, src, -math.inf) == pytest.approx(0.4)


def test_halves_split_every_index_once_and_are_seeded():
    a, b = halves(11, seed=3)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(11)) and len(a) == 5
    assert torch.equal(a, halves(11, seed=3)[0])


def test_noise_and_jpeg_keep_shape_and_range_and_change_the_image():
    x = torch.rand(3, 1, 8, 8)
    n = gaussian_noise(x, 0.05, seed=1)
    assert n.shape == x.shape and 0 <= n.min() and n.max() <= 1 and not torch.equal(n, x)
    assert torch.equal(n, gaussian_noise(x, 0.05, seed=1))
    for shape in ((3, 1, 16, 16), (2, 3, 16, 16)):
        x = torch.rand(*shape)
        j = jpeg(x, 50)
        assert j.shape == x.shape and j.dtype == torch.float32 and 0 < (j - x).abs().mean() < 0.3
    with pytest.raises(ValueError, match="quality"):
        jpeg(x, 0)
    with pytest.raises(ValueError, match="std"):
        gaussian_noise(x, 0.0)


def test_innocent_evidence_has_no_source_and_the_spec_checks_its_sets():
    ev = innocent_evidence(torch.rand(2, 1, 4, 4), torch.tensor([1, 2]), torch.tensor([7, 9]), "x")
    assert (ev.source == -1).all() and ev.clean_index.tolist() == [7, 9]
    assert InnocentSpec().sets == list(INNOCENT_SETS)
    with pytest.raises(ValueError, match="unknown innocent"):
        InnocentSpec(sets=["clean", "rain"])
    with pytest.raises(ValueError, match="two halves"):
        InnocentSpec(num=1)
    with pytest.raises(ValueError, match="num_adversarial"):
        InnocentSpec(num_adversarial=1)
    from tracer.attacks import AttackSpec
    pgd, square = (AttackSpec(n, t, factory=lambda view: None) for n, t in
                   (("pgd", "whitebox"), ("square", "score")))
    spec = InnocentSpec(num=30, num_adversarial=8, num_adversarial_by_attack={"square": 5},
                        attacks=[pgd, square])
    assert spec.names() == ["clean", "gaussian", "jpeg", "independent_pgd", "independent_square"]
    assert [spec.size(k) for k in spec.names()] == [30, 30, 30, 8, 5]
    assert InnocentSpec(attacks=[pgd]).size("independent_pgd") == 2000   # cheap: more of them
    with pytest.raises(ValueError, match="num_adversarial_by_attack.square must be at least 2"):
        InnocentSpec(num_adversarial_by_attack={"square": 1})
    assert spec.attack("independent_square") is square
    with pytest.raises(ValueError, match="unknown innocent set 'independent_hsja'"):
        spec.attack("independent_hsja")
    assert InnocentSpec(sets=["clean", "jpeg"], attacks=[pgd]).names() == ["clean", "jpeg"]


def test_a_stored_null_threshold_still_abstains_on_a_top_that_cannot_be_named():
    from tracer.abstention import stored_threshold
    from tracer.tracing import named
    # copy 0 tops both rows; on the second it fails the key test
    scores = Scores(torch.tensor([[0.5, 0.1], [0.4, 0.2]]),
                    vouched=torch.tensor([[True, True], [False, True]]))
    assert stored_threshold(None) == -math.inf and stored_threshold(0.25) == 0.25
    assert named(scores, stored_threshold(None)).tolist() == [0, -1]
    assert named(scores, None).tolist() == [0, 0]       # None to verdict: no abstention at all
