"""Adaptive attackers: what each one attacks and hands on, and that the sold copy stays as sold."""
import pytest
import torch

import tracer
from tracer.attacks.adaptive import (ADAPTIVE, AdaptiveSpec, EOTModel, WithoutTracer,
                                     attacker_model, post_process, prune)
from tracer.attacks.generate import attack_copy
from tracer.config import CONFIG_DIR, to_spec
from tracer.transforms import shift

from conftest import strong_pgd_case, tiny_copies


def test_every_adaptive_config_is_a_known_attacker():
    names = sorted(p.stem for p in (CONFIG_DIR / "adaptive").glob("*.yaml"))
    assert names == sorted(ADAPTIVE)
    for name in names:
        assert to_spec(tracer.compose("debug=tiny", f"adaptive={name}")).evidence.adaptive.kind == name
    with pytest.raises(ValueError, match="unknown adaptive"):
        AdaptiveSpec(kind="magic")


def test_shift_moves_the_image_and_replicates_the_border():
    x = torch.arange(16.0).view(1, 1, 4, 4) / 16
    s = shift(x, 1)
    assert torch.equal(s[0, 0, 1:, 1:], x[0, 0, :3, :3])
    assert torch.equal(s[0, 0, 0, 1:], x[0, 0, 0, :3]) and torch.equal(shift(x, 0), x)


def test_prune_zeroes_the_smallest_weights_of_a_copy_and_leaves_the_original():
    copies = tiny_copies()
    copy = copies.copy(0)
    before = {k: v.clone() for k, v in copy.state_dict().items()}
    pruned = prune(copy, 0.5)
    w = dict(pruned.named_parameters())
    conv = next(v for k, v in w.items() if v.ndim > 1)
    assert 0.45 <= float((conv == 0).float().mean()) <= 0.55
    assert all(torch.equal(before[k], v) for k, v in copy.state_dict().items())


def test_eot_averages_probabilities_and_the_leaked_tracer_attacker_sees_c_alone():
    copies = tiny_copies()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        p = EOTModel(copies.copy(0), 0.05, 3)(x)
        assert torch.allclose(p.sum(-1), torch.ones(4))
        assert torch.allclose(WithoutTracer(copies.copy(1))(x), copies.norm(copies.base(x)))


def test_surrogate_and_finetune_learn_the_copys_labels_without_touching_it():
    copies = tiny_copies(alpha=0.5)
    copy = copies.copy(1)
    before = {k: v.clone() for k, v in copy.state_dict().items()}
    x = torch.rand(256, 1, 8, 8)
    for kind in ("surrogate", "finetune"):
        spec = AdaptiveSpec(kind=kind, epochs=3, n_train=256)
        model = attacker_model(spec, copy, x, 10, seed=0)
        assert model is not copy
        with torch.no_grad():
            agree = (model(x).argmax(1) == copy(x).argmax(1)).float().mean()
        assert agree > 0.3, kind      # learned something of the copy (chance: ~0.1)
    assert all(torch.equal(before[k], v) for k, v in copy.state_dict().items())


def test_post_processed_evidence_still_fools_its_copy():
    copies, spec, x, y = strong_pgd_case(16)
    adaptive = AdaptiveSpec(kind="jpeg", quality=50)
    ev, tried = attack_copy(copies, 0, spec, x, y, torch.arange(16), 16, progress=False,
                            adaptive=adaptive)
    assert tried == 16 and len(ev) > 0 and ev.params["adaptive"] == "jpeg"
    with torch.no_grad():
        assert (copies.copy(0)(ev.x).argmax(1) != ev.y_true).all()
    assert torch.equal(post_process(AdaptiveSpec(), x), x)
