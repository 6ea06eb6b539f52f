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
