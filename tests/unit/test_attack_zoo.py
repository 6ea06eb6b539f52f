"""Every attack config of the zoo on a tiny copy: it builds from its view, returns images in [0, 1]
of the input's shape, fools the copy on some image, and stays within its query budget (cut to
300-3,000 queries here, so that the zoo runs in seconds; the configured budgets are exercised by
the experiments)."""
from pathlib import Path

import numpy as np
import pytest
import torch

import tracer
from tracer.attacks import ScoreOracle, make_view
from tracer.attacks.art_adapter import ArtAttack, ArtWhiteBox
from tracer.config import to_spec

from conftest import tiny_copies

# Configs that run an attack of the zoo at other settings, not an attack of their own: the
# independent innocent set's shorter HopSkipJump (configs/config.yaml)
VARIANTS = {"hsja_short": "hsja"}
ZOO = sorted(p.stem for p in (Path(tracer.__file__).parents[1] / "configs" / "attack").glob("*.yaml")
             if p.stem != "all" and p.stem not in VARIANTS)


def test_attack_all_selects_every_attack_of_the_zoo():
    spec = to_spec(tracer.compose("attack=all"))
    assert sorted(a.name for a in spec.evidence.attacks) == ZOO
    assert len(ZOO) >= 15
    assert {a.threat for a in spec.evidence.attacks} == {"decision", "score", "whitebox"}


def test_a_variant_differs_from_its_attack_in_iterations_only():
    for variant, attack in VARIANTS.items():
        v, a = (tracer.compose(f"attack={n}").attack[n] for n in (variant, attack))
        assert v.factory.max_iter < a.factory.max_iter
        v.factory.max_iter = a.factory.max_iter
        assert v == a, variant


# Attacks that need more than 300 queries for a first success on the tiny copy (an image out of
# budget comes back unchanged, a failure), and settings that bring their first success within it
LONGER = {"boundary": 3000, "hsja": 3000, "signopt": 3000, "nes": 3000, "spsa": 3000,
          "cw": 3000, "ead": 3000, "square": 3000, "art_square": 3000}
SHORTER = {"boundary": {"max_iter": 20}, "hsja": {"max_iter": 3, "max_eval": 100},
           "signopt": {"query_limit": 2500, "max_iter": 20, "num_trial": 20, "k": 20},
           "spsa": {"nb_iter": 10, "nb_sample": 64}}


@pytest.mark.parametrize("name", ZOO)
def test_attack_runs_on_a_tiny_copy_within_its_budget(name):
    cfg = tracer.compose(f"attack=[{name}]")
    # white-box ones too: forward rows count as queries
    cfg.attack[name].budget = LONGER.get(name, 300)
    for key, value in SHORTER.get(name, {}).items():
        cfg.attack[name].factory[key] = value
    spec = to_spec(cfg).evidence.attacks[0]
    copies = tiny_copies()
    copy = copies.copy(0)
    view = make_view(copy, spec.threat, copies.num_classes, budget=spec.budget)
    attack = spec.factory(view)
    torch.manual_seed(0)
    np.random.seed(0)   # ART draws from numpy's generator
    x = torch.rand(2, 1, 8, 8)
    y = copy(x).argmax(1)
    x_adv = attack.perturb(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert 0 <= x_adv.min() and x_adv.max() <= 1
    assert len(attack.last_queries) == 2 and (attack.last_queries > 0).all()
    with torch.no_grad():   # an attack that hands x back unchanged would pass all of the above
        assert (copy(x_adv).argmax(1) != y).any(), f"{name} fooled the tiny copy on no image"
    if spec.budget is not None:
        assert (attack.last_queries <= spec.budget).all()


def test_art_attack_refuses_a_view_its_threat_model_does_not_give():
    copies = tiny_copies()
    with pytest.raises(TypeError, match="HardLabelOracle"):
        ArtAttack(ScoreOracle(copies.copy(0), 10), attack="HopSkipJump")
    with pytest.raises(ValueError, match="unknown ART attack"):
        ArtAttack(ScoreOracle(copies.copy(0), 10), attack="Deepfool")
    with pytest.raises(TypeError, match="ScoreOracle"):
        ArtAttack(make_view(copies.copy(0), "decision", 10), attack="SquareAttack")
    with pytest.raises(TypeError, match="WhiteBoxModel"):
        ArtWhiteBox(ScoreOracle(copies.copy(0), 10))
    with pytest.raises(ValueError, match="unknown ART white-box attack"):
        ArtWhiteBox(make_view(copies.copy(0), "whitebox", 10), attack="SquareAttack")


def test_art_pgd_stays_within_its_eps_and_counts_its_queries():
    copies = tiny_copies()
    view = make_view(copies.copy(0), "whitebox", 10)
    attack = ArtWhiteBox(view, eps=0.05, eps_step=0.01, max_iter=5)
    x = torch.rand(3, 1, 8, 8)
    x_adv = attack.perturb(x, torch.tensor([1, 2, 3]))
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6
    assert len(attack.last_queries) == 3 and (attack.last_queries > 0).all()
    one_step = ArtWhiteBox(view, attack="FastGradientMethod", eps=0.05).perturb(x)
    assert torch.allclose((one_step - x).abs().max(), torch.tensor(0.05), atol=1e-6)
