"""The two baselines: their scoring rules on known cases, their copies, and their runs."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from tracer.baselines import (IndependentCopies, MaskedCopies, crossing_margin, mask_change,
                              random_masks)
from tracer.evidence import Evidence
from tracer.io import IntegrityError, sha256_file
from tracer.runs import Run, load_run
from tracer.separation import SeparationSpec
from tracer.stages import scorer_name, separate, traced_evidence
from tracer.tracing import named

from conftest import toy_data, toy_separation


def test_crossing_margin_prefers_the_fooled_copy_with_the_smallest_margin():
    # y = 0; copy 0 fooled by 0.4, copy 1 fooled by 0.05, copy 2 not fooled.
    out = torch.tensor([[[0.3, 0.7, 0.0], [0.45, 0.5, 0.05], [0.8, 0.1, 0.1]]])
    s = crossing_margin(out, torch.tensor([0]))
    assert named(s).item() == 1 and s.eligible.tolist() == [[True, True, False]]
    assert s.value[0].tolist() == pytest.approx([-0.4, -0.05, -0.7])
    assert s.order()[0].tolist() == [1, 0, 2]      # the copy still right ranks last


def test_mask_change_names_the_copy_whose_masked_positions_did_not_move():
    keep = torch.ones(3, 1, 2, 2)
    keep[0, 0, 0, 0] = keep[1, 0, 0, 1] = keep[2, 0, 1, 1] = 0
    x = torch.zeros(1, 1, 2, 2)
    x_adv = torch.full((1, 1, 2, 2), 0.2)
    x_adv[0, 0, 0, 1] = 0.0                       # copy 1's masked position untouched
    fooled_all = torch.tensor([[1, 1, 1]])
    s = mask_change(x_adv, x, keep, fooled_all, torch.tensor([0]))
    assert named(s).item() == 1 and s.value[0].tolist() == pytest.approx([-0.2, 0.0, -0.2])
    s = mask_change(x_adv, x, keep, torch.tensor([[1, 0, 1]]), torch.tensor([0]))
    assert s.eligible.tolist() == [[True, False, True]] and named(s).item() == -1  # 0, 2 tie
    assert s.order()[0, -1].item() == 1


def test_random_masks_are_seeded_distinct_and_of_the_asked_size():
    keep = random_masks(4, (1, 8, 8), 0.1, seed=3)
    assert keep.shape == (4, 1, 8, 8)
    assert ((1 - keep).flatten(1).sum(1) == 6).all()          # round(0.1 * 64)
    assert len({tuple(k.flatten().tolist()) for k in keep}) == 4
    assert torch.equal(keep, random_masks(4, (1, 8, 8), 0.1, seed=3))
    with pytest.raises(ValueError, match="masked_fraction"):
        random_masks(2, (1, 8, 8), 1.0)


def _lin():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def test_a_masked_copy_ignores_its_masked_positions_only():
    keep = random_masks(2, (1, 8, 8), 0.25, seed=0)
    copies = MaskedCopies([_lin(), _lin()], keep, 10).eval()
    x = torch.rand(4, 1, 8, 8)
    hidden = torch.rand(4, 1, 8, 8) * (1 - keep[0])
    with torch.no_grad():
        a, b = copies.copy(0)(x), copies.copy(0)(x * keep[0] + hidden)
        assert torch.allclose(a, b)
        assert not torch.allclose(copies.copy(1)(x), copies.copy(1)(x * keep[0] + hidden))
        assert torch.allclose(copies.outputs(x)[:, 1], copies.copy(1)(x))
    with pytest.raises(IndexError):
        copies.copy(2)
    with pytest.raises(ValueError, match="3 masks for 2"):
        MaskedCopies([_lin(), _lin()], random_masks(3, (1, 8, 8), 0.1), 10)


def test_copy_outputs_of_independent_copies_are_probabilities():
    copies = IndependentCopies([_lin(), _lin()], 10).eval()
    with torch.no_grad():
        out = copies.outputs(torch.rand(3, 1, 8, 8))
    assert out.shape == (3, 2, 10) and torch.allclose(out.sum(-1), torch.ones(3, 2))


def _baseline_run(tmp_path_factory, method):
    out = tmp_path_factory.mktemp(f"run_{method}")
    return out, separate(toy_data(), toy_separation(method=method), out, progress=False), method


@pytest.fixture(scope="module")
def naive_run(tmp_path_factory):
    return _baseline_run(tmp_path_factory, "naive")


@pytest.fixture(scope="module")
def watermark_run(tmp_path_factory):
    return _baseline_run(tmp_path_factory, "watermark")


@pytest.fixture(params=["naive_run", "watermark_run"])
def baseline_run(request):
    return request.getfixturevalue(request.param)


def test_baseline_runs_reload_identical_copies(baseline_run):
    out, copies, method = baseline_run
    m = load_run(out).manifest
    assert m["method"] == method and "alpha" not in m
    members = {f"copy_{i}.pt" for i in range(3)}
    assert set(m["files"]) == (members if method == "naive" else members | {"base.pt", "masks.npy"})
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(Run(out).load_copies().outputs(x), copies.outputs(x), atol=1e-6)
    assert scorer_name(copies, "auto") == ("crossing_margin" if method == "naive"
                                           else "mask_change")
    with pytest.raises(ValueError, match="does not apply"):
        scorer_name(copies, "debiased_disagree")


def test_naive_copies_differ_and_copy_0_is_the_tracer_methods_classifier(naive_run, tmp_path):
    out, copies, _ = naive_run
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        out_all = copies.outputs(x)
    assert not torch.allclose(out_all[:, 0], out_all[:, 1])
    separate(toy_data(), toy_separation(), tmp_path, progress=False)
    assert sha256_file(tmp_path / "separate" / "base.pt") == sha256_file(out / "separate" / "copy_0.pt")


def test_tampered_masks_are_refused(watermark_run, tmp_path):
    import shutil
    out, _, _ = watermark_run
    shutil.copytree(out, tmp_path / "r")
    path = tmp_path / "r" / "separate" / "masks.npy"
    keep = np.load(path, allow_pickle=False)
    keep[0, 0, 0, 0] = 1 - keep[0, 0, 0, 0]
    np.save(path, keep)
    with pytest.raises(IntegrityError, match="masks.npy"):
        Run(tmp_path / "r").load_copies()


def test_watermark_tracing_needs_the_clean_images(baseline_run):
    _, copies, method = baseline_run
    z = torch.zeros(2, dtype=torch.long)
    ev = Evidence(torch.rand(2, 1, 8, 8), z, z + 1, z, z, torch.tensor([0, 5]))
    if method == "watermark":
        with pytest.raises(ValueError, match="clean test images"):
            traced_evidence(copies, ev)
        with pytest.raises(ValueError, match="only 3"):
            traced_evidence(copies, ev, torch.rand(3, 1, 8, 8))
    traced = traced_evidence(copies, ev, torch.rand(8, 1, 8, 8))
    assert traced.labels.shape == (2, 3) and copies.scorers[0] in traced.scores


def test_the_train_cache_trains_each_network_once(tmp_path):
    spec = dataclasses.replace(toy_separation(), train_cache=str(tmp_path / "cache"))
    separate(toy_data(), spec, tmp_path / "a", progress=False)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 2 and cached[0].startswith("base-") and cached[1].startswith("tracer_base-")
    other = dataclasses.replace(spec, alpha=0.05, method="watermark")
    separate(toy_data(), other, tmp_path / "b", progress=False)
    assert sha256_file(tmp_path / "b/separate/base.pt") == sha256_file(tmp_path / "a/separate/base.pt")
    assert not (tmp_path / "b/separate/history_base.csv").exists()       # loaded, not trained
    third = dataclasses.replace(spec, classifier=dataclasses.replace(spec.classifier, lr=5e-3))
    separate(toy_data(), third, tmp_path / "c", progress=False)
    assert sha256_file(tmp_path / "c/separate/base.pt") != sha256_file(tmp_path / "a/separate/base.pt")


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown separation method"):
        SeparationSpec(method="magic")
