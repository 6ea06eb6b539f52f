"""Every attack config of the zoo on a tiny copy: it builds from its view, returns images in [0, 1]
of the input's shape, and stays within its query budget (cut to 300 queries here, so that the
zoo runs in seconds; the configured budgets are exercised by the experiments)."""
from pathlib import Path

import pytest
import torch

import tracer
from tracer.attacks import ScoreOracle, make_view
from tracer.attacks.art_adapter import ArtAttack
from tracer.config import to_spec

from conftest import tiny_family

ZOO = sorted(p.stem for p in (Path(tracer.__file__).parents[1] / "configs" / "attack").glob("*.yaml")
             if p.stem != "all")


def test_attack_all_selects_every_attack_of_the_zoo():
    spec = to_spec(tracer.compose("attack=all"))
    assert sorted(a.name for a in spec.attacks) == ZOO
    assert len(ZOO) >= 15
    assert {a.threat for a in spec.attacks} == {"decision", "score", "whitebox"}


@pytest.mark.parametrize("name", ZOO)
def test_attack_runs_on_a_tiny_copy_within_its_budget(name):
    cfg = tracer.compose(f"attack=[{name}]")
    cfg.attack[name].budget = 300   # white-box ones too: forward rows count as queries
    spec = to_spec(cfg).attacks[0]
    family = tiny_family()
    copy = family.copy(0)
    view = make_view(copy, spec.threat, family.num_classes, budget=spec.budget)
    attack = spec.factory(view)
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8)
    y = copy(x).argmax(1)
    x_adv = attack.perturb(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert 0 <= x_adv.min() and x_adv.max() <= 1
    assert len(attack.last_queries) == 2 and (attack.last_queries > 0).all()
    if spec.budget is not None:
        assert (attack.last_queries <= spec.budget).all()


def test_art_attack_refuses_a_view_its_threat_model_does_not_give():
    family = tiny_family()
    with pytest.raises(TypeError, match="HardLabelOracle"):
        ArtAttack(ScoreOracle(family.copy(0), 10), attack="HopSkipJump")
    with pytest.raises(ValueError, match="unknown ART attack"):
        ArtAttack(ScoreOracle(family.copy(0), 10), attack="Deepfool")
    with pytest.raises(TypeError, match="ScoreOracle"):
        ArtAttack(make_view(family.copy(0), "decision", 10), attack="SquareAttack")
