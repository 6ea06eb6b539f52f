import pytest
import torch

from tracer.evaluation.metrics import perturbation_norms, rate, trace_metrics, transferable
from tracer.evaluation.tables import markdown_table, pct
from tracer.evidence import Evidence
from tracer.tracing import Observation, scored


def _ev(source, y_true):
    n = len(source)
    z = torch.zeros(n, dtype=torch.long)
    return Evidence(torch.zeros(n, 1, 2, 2), torch.tensor(y_true), z, torch.tensor(source),
                    torch.full((n,), 10), z)


def test_transferable_ignores_the_source_copy():
    ev = _ev([0, 1, 2], [5, 5, 5])
    labels = torch.tensor([[3, 5, 5],    # only the source (0) fooled
                           [5, 3, 3],    # copy 2 fooled too
                           [3, 3, 3]])   # everyone fooled
    assert transferable(labels, ev).tolist() == [False, True, True]


def test_trace_metrics_on_known_scores():
    ev = _ev([0, 1, 2, 1], [5, 5, 5, 5])
    scores = torch.tensor([[2.0, 0.1, 0.0],   # right, non-transferable
                           [0.0, 1.0, 1.5],   # wrong, transferable
                           [0.0, 0.1, 0.9],   # right, transferable
                           [0.3, 0.9, 0.0]])  # right, non-transferable
    labels = torch.tensor([[3, 5, 5], [5, 3, 3], [3, 3, 3], [5, 3, 5]])
    base = torch.tensor([5, 5, 3, 5]).view(4, 1).expand(4, 3)
    obs = Observation(scores, labels, base, logit_dol_label=-scores, debiased=scores / 10)
    m = trace_metrics(scored(obs, ("dol", "debiased_disagree", "logit_dol_label")), ev,
                      num_tried=8)
    assert m.trace_acc == 0.75 and m.transfer_rate == 0.5
    assert m.trace_acc_transferable == 0.5 and m.trace_acc_nontransferable == 1.0
    assert m.success_rate == 0.5 and m.num_evidence == 4 and m.mean_queries == 10
    assert m.dol_source_mean == pytest.approx((2.0 + 1.0 + 0.9 + 0.9) / 4)
    assert 0 <= m.ks_d <= 1
    # debiased_disagree: example 1 has copies 1, 2 disagreeing with C (label 5): the value picks
    # 2, still wrong; example 3 has only copy 1 disagreeing: right either way.
    assert m.trace_acc_by_scorer == {"dol": 0.75, "debiased_disagree": 0.75,
                                     "logit_dol_label": 0.0}
    assert m.trace_acc_k == m.trace_acc_k_by_scorer["dol"] and m.trace_acc_k["10"] is None
    m2 = trace_metrics(scored(obs, ("dol", "debiased_disagree")), ev, num_tried=8,
                       scorer="debiased_disagree")
    assert m2.scorer == "debiased_disagree" and m2.trace_acc == 0.75
    with pytest.raises(ValueError, match="unknown scorer"):
        trace_metrics(scored(obs, ("dol",)), ev, num_tried=8, scorer="debiased_disagree")


def test_rate_of_empty_set_is_none():
    assert rate(torch.zeros(0, dtype=torch.bool)) is None
    assert pct(None) == "-" and pct(0.5) == "50.0"


def test_markdown_table():
    assert markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_perturbation_norms_on_a_known_difference():
    x = torch.zeros(3, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.3                 # L2 0.3, Linf 0.3
    x_adv[1] = 0.1                          # L2 0.2, Linf 0.1
    x_adv[2, 0, 1] = torch.tensor([0.3, 0.4])  # L2 0.5, Linf 0.4
    n = perturbation_norms(x_adv, x)
    assert n["l2_median"] == pytest.approx(0.3) and n["l2_mean"] == pytest.approx(1.0 / 3)
    assert n["linf_median"] == pytest.approx(0.3) and n["linf_mean"] == pytest.approx(0.8 / 3)
    assert perturbation_norms(x_adv[:0], x[:0]) == dict.fromkeys(n)
