"""Colluding buyers: groups, the attack on their mean, and the rates the verdicts are scored by."""
import pytest
import torch

from tracer.attacks.generate import Colluders, attack_copy
from tracer.evaluation.metrics import collusion_rates
from tracer.stages import collusion_groups
from tracer.tracing import Scores

from conftest import strong_pgd_case


def test_groups_are_consecutive_and_must_be_whole():
    assert collusion_groups([0, 1, 2, 3, 4, 5], 3) == [[0, 1, 2], [3, 4, 5]]
    assert collusion_groups([2, 4], 1) == [[2], [4]]
    with pytest.raises(ValueError, match="whole groups"):
        collusion_groups([0, 1, 2, 3, 4], 2)
    with pytest.raises(ValueError, match="whole groups"):
        collusion_groups([0, 1], 0)


def test_collusion_rates_on_known_scores():
    groups = [[0, 1], [2, 3]]
    scores = Scores(torch.tensor([[0.9, 0.8, 0.1, 0.0],    # group 0: names 0, top-2 = {0, 1}
                                  [0.1, 0.9, 0.8, 0.0],    # group 0: names 1, top-2 = {1, 2}
                                  [0.9, 0.0, 0.1, 0.2],    # group 2-3: names 0 (wrong)
                                  [0.0, 0.0, 0.5, 0.5]]))  # group 2-3: a tie: abstains
    any_c, all_c = collusion_rates(scores, torch.tensor([0, 0, 2, 2]), groups)
    assert any_c == 0.5 and all_c == 0.5
    with pytest.raises(ValueError, match="starts none"):
        collusion_rates(scores, torch.tensor([1, 0, 2, 2]), groups)


def test_colluders_attack_their_mean_and_keep_only_what_fools_each():
    copies, spec, x, y = strong_pgd_case(24, num_copies=4)
    ev, tried = attack_copy(copies, [0, 1], spec, x, y, torch.arange(24), 24, progress=False)
    assert tried == 24 and len(ev) > 0 and (ev.source == 0).all()
    with torch.no_grad():
        for i in (0, 1):
            assert (copies.copy(i)(ev.x).argmax(1) != ev.y_true).all()
        mean = Colluders([copies.copy(0), copies.copy(1)])(x)
    assert torch.allclose(mean, (copies.copy(0)(x) + copies.copy(1)(x)) / 2)


def test_colluders_answer_adversarial_only_when_every_copy_is_fooled():
    copies, _, x, _ = strong_pgd_case(64, num_copies=3)
    c0, c1 = copies.copy(0), copies.copy(1)
    colluders = Colluders([c0, c1])
    with torch.no_grad():
        l0, l1 = c0(x).argmax(1), c1(x).argmax(1)
        for label in range(10):
            colluders.label = label
            answer = colluders(x).argmax(1)
            both = (l0 != label) & (l1 != label)
            assert torch.equal(answer != label, both)

