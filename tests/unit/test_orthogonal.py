"""The paper's counter-measure to collusion: per-copy classifiers with orthogonal input gradients."""
import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from tracer.runs import load_run
from tracer.separation import ClassifierTraining
from tracer.separation.orthogonal import (gradient_orthogonality_loss, input_gradients,
                                          train_orthogonal_classifiers)
from tracer.separation import SeparationSpec
from tracer.stages import separate

from conftest import Linear2, tiny_copies, toy_data, toy_separation


def test_orthogonality_is_the_mean_squared_cosine_over_pairs():
    g = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]], [[1.0, 1.0]]])   # [3 copies, 1 image, 2]
    # pairs: (0,1) cos 0; (0,2) cos 1/sqrt2; (1,2) cos 1/sqrt2 -> mean of 0, 1/2, 1/2
    assert gradient_orthogonality_loss(g).item() == pytest.approx(1 / 3)
    assert gradient_orthogonality_loss(g[:1]).item() == 0.0


def test_input_gradients_are_those_of_each_classifiers_cross_entropy():
    w = torch.randn(64)
    models = nn.ModuleList([Linear2(w), Linear2(-w)])
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 0])
    g, ce = input_gradients(models, x, y)
    assert g.shape == (2, 3, 64)
    expected = sum(torch.nn.functional.cross_entropy(m(x), y) for m in models) / 2
    assert ce.item() == pytest.approx(expected.item(), rel=1e-5)
    # the two models' logits differ in sign, so their gradients are opposite: cos^2 = 1
    assert gradient_orthogonality_loss(g).item() == pytest.approx(1.0, abs=1e-5)


def test_fine_tuning_turns_the_copies_gradients_apart():
    data = toy_data()
    base = tiny_copies().base
    start = nn.ModuleList([copy.deepcopy(base) for _ in range(3)])
    before = gradient_orthogonality_loss(input_gradients(start, data.x_train, data.y_train)[0])
    assert before.item() == pytest.approx(1.0, abs=1e-4)   # identical copies of C
    train_orthogonal_classifiers(start, data.x_train, data.y_train,
                                 ClassifierTraining(epochs=10, batch_size=48, lr=1e-2), weight=1.0,
                                 progress=False)
    after = gradient_orthogonality_loss(input_gradients(start, data.x_train, data.y_train)[0])
    assert after.item() < 0.5 * before.item()


def test_copies_with_their_own_classifiers_reload_and_add_alpha_times_their_tracer(tmp_path):
    spec = replace(toy_separation(), classifiers="orthogonal",
                   finetune=ClassifierTraining(epochs=1, batch_size=16))
    copies = separate(toy_data(), spec, tmp_path / "r", progress=False)
    run = load_run(tmp_path / "r")
    assert run.manifest["classifiers"] == "orthogonal" and "classifiers.pt" in run.manifest["files"]
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(run.load_copies().outputs(x), copies.outputs(x), atol=1e-6)
        for i in range(3):
            own = copies.norm(copies.classifiers[i](x))
            expected = own + copies.alpha * copies.copy(i).tracer_outputs(x)
            assert torch.allclose(copies.copy(i)(x), expected, atol=1e-6)
            assert torch.allclose(copies.outputs(x)[:, i], expected, atol=1e-6)
    with pytest.raises(ValueError, match="classifiers"):
        SeparationSpec(classifiers="bespoke")
