"""The readings of what an attack's evidence holds of its source (tracer.evaluation.anatomy)."""
import pytest
import torch
from torch import nn

from tracer.evaluation.anatomy import (by_queries, fooled_by_chance, residual_seen, tracer_share,
                                       where_detection_is_lost)
from tracer.evidence import Evidence
from tracer.tracing import Scores


class Threshold(nn.Module):
    """Label 1 where some pixel is more than ``tol`` from 0.5, else label 0."""

    def __init__(self, tol: float):
        super().__init__()
        self.tol = tol

    def forward(self, x):
        far = (x - 0.5).abs().flatten(1).amax(1) > self.tol
        return torch.stack([(~far).float(), far.float()], dim=1)


def test_fooled_by_chance_counts_only_the_images_c_got_right():
    x = torch.full((40, 1, 8, 8), 0.5)
    y = torch.zeros(40, dtype=torch.long)
    y[:10] = 1                                   # wrong before any perturbation
    assert fooled_by_chance(Threshold(0.05), x, y) == {"stripes": 1.0, "signs": 1.0,
                                                       "blocks": 1.0}
    assert fooled_by_chance(Threshold(0.2), x, y) == {"stripes": 0.0, "signs": 0.0,
                                                      "blocks": 0.0}
    with pytest.raises(ValueError, match="labels none of the images right"):
        fooled_by_chance(Threshold(0.05), x, torch.ones(40, dtype=torch.long))


def test_tracer_share_splits_each_copys_output_change_into_tracer_and_classifier():
    from conftest import tiny_copies
    copies = tiny_copies(keying="projection")
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(6, 1, 8, 8, generator=g)
    x_adv = (clean + 0.1 * torch.randn(6, 1, 8, 8, generator=g)).clamp(0, 1)
    y_true, y_adv = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([1, 2, 3, 4, 5, 6])
    ev = Evidence(x_adv, y_true, y_adv, torch.tensor([0, 1, 2, 0, 1, 2]),
                  torch.zeros(6, dtype=torch.long), torch.arange(6))
    share = tracer_share(copies, ev, clean, batch_size=4)
    with torch.no_grad():
        out_adv, out_clean = copies.outputs(x_adv), copies.outputs(clean)
    rows = torch.arange(6)
    moved = (out_adv[rows, :, y_adv] - out_adv[rows, :, y_true]) - \
        (out_clean[rows, :, y_adv] - out_clean[rows, :, y_true])          # [n, m]
    assert torch.allclose(share["tracer"] + share["classifier"].unsqueeze(1), moved, atol=1e-6)
    assert torch.equal(share["oracle"], share["tracer"].argmax(1))
    unmoved = Evidence(clean, y_true, y_adv, ev.source, ev.queries, ev.clean_index)
    still = tracer_share(copies, unmoved, clean)
    assert torch.equal(still["tracer"], torch.zeros(6, 3))
    assert torch.equal(still["classifier"], torch.zeros(6))


def test_by_queries_buckets_examples_and_leaves_empty_buckets_out():
    queries = torch.tensor([1, 3, 40, 60, 700])
    correct = torch.tensor([False, True, True, True, True])
    transfer = torch.tensor([True, True, False, True, False])
    assert by_queries(queries, correct, transfer) == [
        {"queries": [0, 5], "num": 2, "traced": 0.5, "transferable": 1.0},
        {"queries": [20, 100], "num": 2, "traced": 1.0, "transferable": 0.5},
        {"queries": [500, None], "num": 1, "traced": 1.0, "transferable": 0.0}]


class HighPass(nn.Module):
    """x minus its 4 x 4 block means: returns per-pixel noise whole, constant blocks not at all."""

    def forward(self, x):
        means = nn.functional.avg_pool2d(x, 4).repeat_interleave(4, -2).repeat_interleave(4, -1)
        return x - means


def test_residual_seen_is_the_share_of_the_perturbation_r_returns():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(6, 1, 8, 8, generator=g) * 0.5 + 0.25
    block = torch.zeros(6, 1, 8, 8)
    block[..., :4, :4] = 0.1                                     # one constant 4 x 4 block
    signs = 0.1 * (torch.randint(0, 2, (6, 1, 8, 8), generator=g) * 2 - 1)
    signs = signs - nn.functional.avg_pool2d(signs, 4).repeat_interleave(4, -2) \
        .repeat_interleave(4, -1)                                 # no block mean: all high-pass
    x = torch.cat([clean + block, clean + signs, clean[:1]])
    before = torch.cat([clean, clean, clean[:1]])
    seen = residual_seen(HighPass(), x, before, batch_size=4)
    assert torch.allclose(seen[:6], torch.zeros(6), atol=1e-6)   # taken for structure
    assert torch.allclose(seen[6:12], torch.ones(6), atol=1e-5)  # returned whole
    assert seen[12] == 0                                         # unperturbed
    assert torch.allclose(residual_seen(nn.Identity(), x, before)[:12], torch.ones(12), atol=1e-5)


def test_where_detection_is_lost_splits_the_traced_by_key_test_and_threshold():
    value = torch.tensor([[0.9, 0.1], [0.3, 0.2], [0.5, 0.1], [0.1, 0.8], [0.4, 0.4]])
    vouched = torch.tensor([[True, False], [True, False], [False, False], [False, True],
                            [True, True]])
    source = torch.tensor([0, 0, 0, 0, 0])
    # traced: rows 0-2 (row 3 names copy 1, row 4 is a tie); nameable: rows 0 and 1; at 0.5: row 0
    got = where_detection_is_lost(Scores(value, vouched=vouched), source, threshold=0.5)
    assert got == pytest.approx({"traced": 0.6, "nameable": 2 / 3, "detected": 1 / 3})
    assert where_detection_is_lost(Scores(value), source, 0.0)["nameable"] == 1.0   # no key test
    assert where_detection_is_lost(Scores(value), torch.ones(5, dtype=torch.long), 0.5) == \
        pytest.approx({"traced": 0.2, "nameable": 1.0, "detected": 1.0})
    assert where_detection_is_lost(Scores(value[4:]), source[4:], 0.5) == \
        {"traced": 0.0, "nameable": None, "detected": None}
