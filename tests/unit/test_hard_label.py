"""What every batched decision-based attack of ours shares (tracer.attacks.hard_label)."""
import pytest
import torch

from tracer.attacks.boundary import BatchedBoundary
from tracer.attacks.hard_label import SETTLE, HardLabelSearch, _rank_within_owner
from tracer.attacks.hsja import BatchedHopSkipJump
from tracer.attacks.oracle import HardLabelOracle

from conftest import Linear2, linear_case

ATTACKS = [BatchedHopSkipJump, BatchedBoundary]


@pytest.mark.parametrize("attack", ATTACKS)
def test_same_seed_same_result(attack):
    model, x, _ = linear_case(n=3)
    y = torch.zeros(3, dtype=torch.long)
    a = attack(HardLabelOracle(model, 2), max_iter=5, seed=7).perturb(x, y)
    b = attack(HardLabelOracle(model, 2), max_iter=5, seed=7).perturb(x, y)
    assert torch.equal(a, b)


@pytest.mark.parametrize("attack", ATTACKS)
def test_image_without_adversarial_start_comes_back_unchanged(attack):
    model = Linear2(torch.ones(64), c=2.0)  # nothing in [0, 1] reaches class 1
    x = torch.rand(2, 1, 8, 8)
    out = attack(HardLabelOracle(model, 2), init_size=5).perturb(
        x, torch.zeros(2, dtype=torch.long))
    assert torch.equal(out, x)


def test_rank_within_owner():
    owner = torch.tensor([3, 1, 3, 3, 1, 0])
    assert _rank_within_owner(owner).tolist() == [0, 0, 1, 2, 1, 0]


class _OnTheBoundary(HardLabelSearch):
    """Answers exactly on the linear model's boundary, where float error decides the label."""

    def _run(self, x, gen):
        w = self.oracle._model.w
        s = (x.flatten(1) - self.oracle._model.c) @ w
        return x - (s / w.norm() ** 2).view(-1, 1, 1, 1) * w.view(1, 1, 8, 8)


def test_answers_end_settled_beyond_the_boundary_at_one_query_each():
    model, x, dist = linear_case(n=4)
    y = torch.zeros(4, dtype=torch.long)
    attack = _OnTheBoundary(HardLabelOracle(model, 2))
    out = attack.perturb(x, y)
    # on the boundary both logits are 0 and argmax names the clean class 0: not adversarial
    assert (model(out).argmax(1) == 1).all()
    assert torch.allclose((out - x).flatten(1).norm(dim=1), (1 + SETTLE) * dist, rtol=1e-4)
    assert attack.last_queries.tolist() == [1, 1, 1, 1]


def test_settling_keeps_the_answer_where_further_out_no_longer_fools():
    class Band(Linear2):   # class 1 only in a thin band: beyond it, class 0 again
        def forward(self, x):
            s = (x.flatten(1) - self.c) @ self.w
            inside = (s > 0) & (s < 1e-4)
            return torch.stack([(~inside).float(), inside.float()], dim=1)

    model, x, _ = linear_case(n=2)
    w = model.w.view(1, 1, 8, 8)
    adv = x - (((x.flatten(1) - 0.5) @ model.w - 5e-5) / model.w.norm() ** 2).view(-1, 1, 1, 1) * w
    band = Band(model.w)
    assert (band(adv).argmax(1) == 1).all()
    attack = HardLabelSearch(HardLabelOracle(band, 2))
    attack._queries, attack._y = torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    assert torch.equal(attack._settled(x, adv.clone()), adv)
    assert attack._queries.tolist() == [1, 1]
