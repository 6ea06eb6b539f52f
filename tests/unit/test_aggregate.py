import torch

from tracer.evaluation.aggregate import aggregate_accuracy
from tracer.tracing import Scores


def test_k1_equals_plain_accuracy_in_expectation():
    scores = Scores(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    source = torch.tensor([0, 0, 1, 1])   # examples 1 and 2 are mis-traced, 0 and 3 right
    acc = aggregate_accuracy(scores, source, k=1, trials=4000)
    assert abs(acc - 0.5) < 0.05


def test_averaging_fixes_a_minority_of_wrong_examples():
    # source 0: three strong right answers, one weak wrong one
    scores = Scores(torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 0.5]]))
    source = torch.zeros(4, dtype=torch.long)
    assert aggregate_accuracy(scores, source, k=1, trials=2000) < 0.85
    assert aggregate_accuracy(scores, source, k=4, trials=10) == 1.0


def test_no_source_with_k_examples():
    assert aggregate_accuracy(Scores(torch.zeros(3, 2)), torch.tensor([0, 1, 1]), k=5) is None


def test_group_rates_count_the_source_named_a_wrong_copy_named_and_abstentions():
    from tracer.evaluation.aggregate import group_rates
    # source 0: every group of 2 names copy 0 (mean 1.0 >= 0.5); source 1: its two examples
    # average to copy 0 at 0.6 (a wrong copy named at threshold 0.5, abstained at 0.7)
    value = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.8, 0.2], [0.4, 0.1]])
    source = torch.tensor([0, 0, 0, 1, 1])
    got = group_rates(Scores(value), source, {2: 0.5, 3: 0.5})
    assert got["2"] == {"detection_rate": 0.5, "wrong_accusation_rate": 0.5}
    assert got["3"] == {"detection_rate": 1.0, "wrong_accusation_rate": 0.0}  # source 0 alone
    assert group_rates(Scores(value), source, {2: 0.7})["2"] == \
        {"detection_rate": 0.5, "wrong_accusation_rate": 0.0}
    assert group_rates(Scores(value), source, {4: 0.5}) == {"4": None}


def test_group_false_accusations_test_innocent_inputs_together():
    from tracer.evaluation.aggregate import group_false_accusations
    # one innocent input in four reads 1.0 on copy 1; a group of 4 averages it to 0.25
    value = torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    alone = group_false_accusations(Scores(value), {1: 0.5, 4: 0.5, 5: 0.5})
    assert abs(alone["1"] - 0.25) < 0.05 and alone["4"] == 0.0 and alone["5"] is None
    # the key test on the group: copy 1 ranks below the unsold key on three examples of four,
    # then above it on all four
    value = torch.tensor([[0.0, 1.0], [0.0, 0.5], [0.0, 0.5], [0.0, 0.5]])
    for unsold, accused in ((torch.tensor([[0.1], [0.6], [0.6], [0.6]]), 0.0),
                            (torch.tensor([[0.1], [0.4], [0.4], [0.4]]), 1.0)):
        scores = Scores(value, vouched=value > unsold, unsold=unsold)
        assert group_false_accusations(scores, {4: 0.1})["4"] == accused


def test_group_thresholds_hold_groups_of_innocent_inputs_to_the_target_share():
    import math
    from tracer.seeding import derived_seed
    from tracer.stages.calibrating import _group_thresholds
    from tracer.evaluation.aggregate import innocent_groups
    from tracer.tracing import named
    value = torch.rand(300, 3, generator=torch.Generator().manual_seed(0))
    got = _group_thresholds({"a": Scores(value)}, 0.01, seed=4)
    assert set(got) == {5, 10}
    for k, t in got.items():
        groups = innocent_groups(Scores(value), k, derived_seed(4, f"innocent_groups_{k}"))
        assert (named(groups, t) >= 0).float().mean() <= 0.01
        below = float(torch.nextafter(torch.tensor(t), torch.tensor(-math.inf)))
        assert (named(groups, below) >= 0).float().mean() > 0.01      # the smallest such
        # a mean of k scores rarely reaches what single scores reach
        assert t < float(value.max(1).values.quantile(0.99))
    assert _group_thresholds({"a": Scores(value[:4])}, 0.01, seed=4) == {5: -math.inf,
                                                                          10: -math.inf}


def test_the_calibrate_stage_says_when_the_key_test_cannot_bound_a_wrong_copy_alone():
    from tracer.stages.calibrating import key_test_too_weak
    assert key_test_too_weak(5, 1000, 0.01) is None             # 4 / 1001: within 1%
    assert key_test_too_weak(5, 0, 0.01) is None                # no key test: nothing to say
    said = key_test_too_weak(50, 1000, 0.01)                    # 49 / 1001 = 4.9%
    assert "0.049" in said and "separation.unsold_keys=4899" in said
    assert key_test_too_weak(50, 4899, 0.01) is None            # 49 / 4900: exactly 1%
    assert key_test_too_weak(50, 4898, 0.01) is not None
