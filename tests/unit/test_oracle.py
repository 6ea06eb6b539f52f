import numpy as np
import pytest
import torch

from tracer.attacks.oracle import (HardLabelOracle, QueryBudgetExceeded, ScoreOracle,
                                   ThreatModelViolation, WhiteBoxModel, make_view)


def test_hard_label_oracle_counts_and_returns_labels_only(copies):
    copy = copies.copy(0)
    oracle = make_view(copy, "decision", 10)
    x = torch.rand(6, 1, 8, 8)
    labels = oracle(x)
    assert labels.dtype == torch.long and labels.shape == (6,)
    assert torch.equal(labels, copy(x).argmax(1))
    oracle(x[:2].numpy().astype(np.float64))  # ART hands float64 arrays
    assert oracle.queries == 8
    hot = oracle.one_hot(x.numpy())
    assert hot.dtype == np.float32 and (hot.sum(1) == 1).all()
    oracle.reset()
    assert oracle.queries == 0


def test_hard_label_oracle_refuses_more_than_labels(copies):
    oracle = make_view(copies.copy(0), "decision", 10)
    with pytest.raises(ThreatModelViolation):
        oracle.scores(torch.rand(1, 1, 8, 8))
    with pytest.raises(ThreatModelViolation):
        oracle.model
    with pytest.raises(ThreatModelViolation):
        oracle.parameters()
    with pytest.raises(ThreatModelViolation, match="gradients"):
        oracle(torch.rand(1, 1, 8, 8, requires_grad=True))
    assert not hasattr(oracle, "__deepcopy__")


def test_score_oracle_gives_scores_without_gradient(copies):
    oracle = make_view(copies.copy(1), "score", 10)
    assert isinstance(oracle, ScoreOracle)
    s = oracle(torch.rand(3, 1, 8, 8))
    assert s.shape == (3, 10) and not s.requires_grad
    with pytest.raises(ThreatModelViolation):
        oracle(torch.rand(1, 1, 8, 8, requires_grad=True))


def test_budget_is_per_image_and_enforced(copies):
    oracle = HardLabelOracle(copies.copy(0), 10, budget=5)
    oracle.reset(num_images=2)
    oracle(torch.rand(10, 1, 8, 8))
    with pytest.raises(QueryBudgetExceeded):
        oracle(torch.rand(1, 1, 8, 8))


def test_white_box_model_is_differentiable_and_counted(copies):
    wb = make_view(copies.copy(0), "whitebox", 10)
    assert isinstance(wb, WhiteBoxModel)
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    wb(x).sum().backward()
    assert x.grad is not None and wb.queries == 4


def test_unknown_threat_model():
    with pytest.raises(ValueError, match="threat"):
        make_view(torch.nn.Identity(), "telepathy", 10)
