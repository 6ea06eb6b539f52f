import pytest
import torch

from tracer.evaluation.num_copies import accuracy_vs_num_copies, monte_carlo_accuracy
from tracer.tracing import Scores


def test_accuracy_vs_num_copies_counts_candidate_subsets_exactly():
    # 4 copies; example 0: source best; example 1: one innocent above the source
    scores = Scores(torch.tensor([[3.0, 1.0, 0.0, 2.0],
                                  [0.0, 2.0, 1.0, 0.5]]))
    source = torch.tensor([0, 2])
    acc = accuracy_vs_num_copies(scores, source, [2, 3, 4])
    # example 1 wins when the innocent scoring 2.0 (one of 3) is left out:
    # n=2: 2/3; n=3: C(2,2)/C(3,2) = 1/3; n=4: 0
    assert acc[2] == pytest.approx((1 + 2 / 3) / 2)
    assert acc[3] == pytest.approx((1 + 1 / 3) / 2)
    assert acc[4] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="outside"):
        accuracy_vs_num_copies(scores, source, [5])


def test_full_candidate_set_equals_argmax_accuracy():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(200, 6, generator=gen)
    source = torch.randint(6, (200,), generator=gen)
    scores[torch.arange(200), source] += 1.0
    plain = float((scores.argmax(1) == source).float().mean())
    assert accuracy_vs_num_copies(Scores(scores), source, [6])[6] == pytest.approx(plain)


def test_monte_carlo_matches_the_analytic_value_and_falls_with_n():
    # source scores all 1; innocents uniform on {0, 2}: P(win against n-1) = 0.5 ** (n - 1)
    yes = torch.ones(10, dtype=torch.bool)
    est = monte_carlo_accuracy((yes, torch.ones(10)), (yes[:2], torch.tensor([0.0, 2.0])),
                               [2, 3, 5], trials=40000)
    for n, value in est.items():
        assert value == pytest.approx(0.5 ** (n - 1), abs=0.01)
    # an eligible source outranks ineligible innocents whatever their values
    no = torch.zeros(2, dtype=torch.bool)
    est = monte_carlo_accuracy((yes, torch.ones(10)), (no, torch.tensor([0.0, 2.0])), [3],
                               trials=1000)
    assert est[3] == 1.0


def test_an_ineligible_innocent_never_beats_an_eligible_source():
    scores = Scores(torch.tensor([[0.1, 5.0, 0.0]]), torch.tensor([[True, False, True]]))
    assert accuracy_vs_num_copies(scores, torch.tensor([0]), [2, 3]) == {2: 1.0, 3: 1.0}
