"""Innocent inputs the calibration never saw: which images, and how often a copy is named."""
import math

import pytest
import torch

from tracer.abstention import false_accusation_rate
from tracer.evaluation.unseen import UNSEEN, unseen_false_accusations, unseen_images
from tracer.innocent import innocent_evidence, innocent_image_order
from tracer.stages import traced_evidence

from conftest import tiny_copies


def test_unseen_images_are_test_images_no_image_set_holds():
    held = set(innocent_image_order(500, seed=4)[:300].tolist())   # what each image set takes
    idx = unseen_images(500, 300, 150, seed=4)
    assert len(idx) == 150 and not held & set(idx.tolist())
    assert len(set(idx.tolist())) == 150 and int(idx.max()) < 500
    assert len(unseen_images(500, 300, 1000, seed=4)) == 200       # only what is left
    assert len(unseen_images(500, 500, 10, seed=4)) == 0


def test_every_corruption_is_traced_and_counted_at_the_threshold():
    copies = tiny_copies(3, keying="projection", unsold=50)
    x, y = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,))
    idx = torch.arange(40)
    # one corruption by hand: the same images, traced as innocent evidence; a threshold at the
    # median of their top scores names a copy on about half of them
    blurred = innocent_evidence(UNSEEN["blur_3"](x, 1), y, idx, "blur")
    scores = traced_evidence(copies, blurred).scores["dol"]
    threshold = float(scores.top()[1].median())
    rates = unseen_false_accusations(copies, x, y, idx, "dol", threshold, seed=1)
    assert set(rates) == set(UNSEEN) and all(0 <= r <= 1 for r in rates.values())
    assert rates["blur_3"] == false_accusation_rate(scores, threshold)
    assert 0.3 < rates["blur_3"] < 0.7
    nobody = unseen_false_accusations(copies, x, y, idx, "flip_disagree", math.inf, seed=1)
    assert all(r == 0 for r in nobody.values())
    with pytest.raises(ValueError, match="no test images left"):
        unseen_false_accusations(copies, x[:0], y[:0], idx[:0], "flip_disagree", 0.0)
