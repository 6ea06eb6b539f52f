"""The run directory: what separate writes can be read back, and nothing tampered with is used."""
import json
from contextlib import contextmanager
from dataclasses import replace

import pytest
import torch

from tracer.io import IntegrityError, sha256_file, write_json
from tracer.runs import Run, load_run
from tracer.separation import ClassifierTraining
from tracer.stages import separate

from conftest import toy_data, toy_separation


@pytest.fixture(scope="module", params=["residual", "paper"])
def run_dir(tmp_path_factory, request):
    out = tmp_path_factory.mktemp(f"run_{request.param}")
    copies = separate(toy_data(), toy_separation(request.param), out, progress=False)
    return out, copies


def test_separate_writes_manifest_and_reloads_identical_copies(run_dir):
    out, copies = run_dir
    run = load_run(out)
    m = run.manifest
    assert m["alpha"] == 0.15
    if m["method"] == "paper":   # each method's own keys: the paper's permutations, our projections
        assert m["keying"] == "permutation" and len(m["permutations"]) == 3
    else:
        assert m["keying"] == "projection" and "projections_sha256" in m
        assert m["unsold_keys"] == 1000 and m["common_directions"] == 2    # 2.5% of 64
    reading = {"common_directions.npy"} if m["method"] == "residual" else set()
    assert set(m["files"]) == {"base.pt", "tracer_base.pt"} | reading
    assert len(m["accuracy"]["copy_clean_acc"]) == 3
    assert run.stage_done("separate") and not (out / "separate" / "resume" / "base.pt").exists()
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(run.load_copies().outputs(x), copies.outputs(x), atol=1e-6)


def test_separate_is_skipped_when_done(run_dir):
    out, _ = run_dir
    before = sha256_file(out / "separate" / "base.pt")
    separate(toy_data(), toy_separation(), out, progress=False)
    assert sha256_file(out / "separate" / "base.pt") == before


def _copy_run(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return Run(dst)


def test_tampered_checkpoint_is_refused(run_dir, tmp_path):
    run = _copy_run(run_dir[0], tmp_path / "r")
    path = run.separate_dir / "base.pt"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IntegrityError, match="base.pt.*sha256"):
        run.load_copies()


def test_tampered_or_misshapen_common_directions_are_refused(run_dir, tmp_path):
    import numpy as np
    from tracer.io import save_npy
    run = _copy_run(run_dir[0], tmp_path / "r")
    loaded = run.load_copies()
    if run.manifest["method"] == "paper":       # permutation keys: tracing reads no directions
        assert not hasattr(loaded, "common")
        assert not (run.separate_dir / "common_directions.npy").exists()
        return
    assert loaded.common.shape == (64, 2)
    assert torch.allclose(loaded.common.T @ loaded.common, torch.eye(2), atol=1e-5)
    path = run.separate_dir / "common_directions.npy"
    save_npy(path, np.zeros((64, 3), dtype=np.float32))
    with pytest.raises(IntegrityError, match="common_directions.npy.*sha256"):
        run.load_copies()
    m = json.loads(run.manifest_path.read_text())
    m["files"]["common_directions.npy"] = sha256_file(path)
    write_json(run.manifest_path, m)
    with pytest.raises(IntegrityError, match=r"float32 \[64, 2\]"):
        run.load_copies()


def test_truncated_checkpoint_with_matching_hash_is_refused(run_dir, tmp_path):
    run = _copy_run(run_dir[0], tmp_path / "r")
    path = run.separate_dir / "tracer_base.pt"
    path.write_bytes(path.read_bytes()[:100])
    m = json.loads(run.manifest_path.read_text())
    m["files"]["tracer_base.pt"] = sha256_file(path)
    write_json(run.manifest_path, m)
    with pytest.raises(IntegrityError, match="tracer_base.pt.*not a readable"):
        run.load_copies()


def test_manifest_that_does_not_fit_the_checkpoint_is_refused(run_dir, tmp_path):
    run = _copy_run(run_dir[0], tmp_path / "r")
    m = json.loads(run.manifest_path.read_text())
    m["model"]["kwargs"]["hidden"] = 99
    write_json(run.manifest_path, m)
    with pytest.raises(IntegrityError, match="does not fit"):
        run.load_copies()
    m["format"] = 99
    write_json(run.manifest_path, m)
    with pytest.raises(IntegrityError, match="format"):
        run.load_copies()


def test_load_run_needs_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "nope")


@contextmanager
def _no_training(monkeypatch):
    """Within: any training of C or T_0 is an error, so what separate builds was reused."""
    from tracer.separation.trainer import Trainer
    trained = Trainer.trained

    def refuse(*args, **kwargs):
        raise AssertionError("trained instead of reused")

    def never_training(self, name, module, key, train):
        return trained(self, name, module, key, refuse)
    with monkeypatch.context() as m:
        m.setattr(Trainer, "trained", never_training)
        yield


def test_reuse_takes_identically_trained_parts_only(run_dir, tmp_path, monkeypatch):
    src, _ = run_dir
    spec = toy_separation(Run(src).manifest["method"])
    spec.alpha, spec.reuse = 0.05, str(src)
    with _no_training(monkeypatch):
        separate(toy_data(), spec, tmp_path / "a", progress=False)
    for name in ("base.pt", "tracer_base.pt"):
        assert sha256_file(tmp_path / "a" / "separate" / name) == sha256_file(src / "separate" / name)
    assert Run(tmp_path / "a").manifest["alpha"] == 0.05
    spec.classifier = ClassifierTraining(epochs=2, batch_size=16)  # C would be trained otherwise
    separate(toy_data(), spec, tmp_path / "b", progress=False)
    assert sha256_file(tmp_path / "b" / "separate" / "base.pt") != sha256_file(src / "separate" / "base.pt")
    assert sha256_file(tmp_path / "b" / "separate" / "tracer_base.pt") == \
        sha256_file(src / "separate" / "tracer_base.pt")


def test_reuse_reads_a_run_recorded_before_c_could_see_adversarial_examples_as_without_them(
        run_dir, tmp_path, monkeypatch):
    src = _copy_run(run_dir[0], tmp_path / "old")
    info = src.info()
    recorded = info["stages"]["separate"]["spec"]["classifier"]
    del recorded["adversarial_share"], recorded["adversarial_epsilon"]
    write_json(src.run_json, info)
    spec = toy_separation(src.manifest["method"])
    spec.reuse = str(src.path)
    assert spec.classifier.adversarial_share == 0.0   # as the old run's C was trained
    spec.classifier = replace(spec.classifier, adversarial_epsilon=0.3)   # moot at share 0
    with _no_training(monkeypatch):
        separate(toy_data(), spec, tmp_path / "a", progress=False)
    assert sha256_file(tmp_path / "a" / "separate" / "base.pt") == \
        sha256_file(src.separate_dir / "base.pt")
    spec.classifier = replace(spec.classifier, adversarial_share=0.5)
    separate(toy_data(), spec, tmp_path / "b", progress=False)
    assert sha256_file(tmp_path / "b" / "separate" / "base.pt") != \
        sha256_file(src.separate_dir / "base.pt")


def test_a_later_stage_trains_its_classifier_as_the_run_recorded_c_not_as_todays_defaults(
        run_dir, tmp_path):
    from tracer.stages.separating import trained_as_recorded
    src = _copy_run(run_dir[0], tmp_path / "old")
    info = src.info()
    recorded = info["stages"]["separate"]["spec"]
    del recorded["classifier"]["adversarial_share"], recorded["classifier"]["random_share"]
    recorded["classifier"]["epochs"] = 3
    recorded["model"]["kwargs"] = {"width": 5, "hidden": 7}
    write_json(src.run_json, info)
    today = replace(toy_separation(src.manifest["method"]), classifier=ClassifierTraining(
        epochs=9, random_share=0.25, adversarial_share=0.25), alpha=0.3)
    as_run = trained_as_recorded(src, today)
    assert (as_run.classifier.epochs, as_run.classifier.random_share,
            as_run.classifier.adversarial_share) == (3, 0.0, 0.0)
    assert as_run.model.kwargs == {"width": 5, "hidden": 7} and as_run.alpha == 0.3
    assert trained_as_recorded(Run(tmp_path / "fresh"), today) is today   # nothing recorded
    recorded["classifier"]["no_such_setting"] = 1
    write_json(src.run_json, info)
    with pytest.raises(ValueError, match="record of C"):
        trained_as_recorded(src, today)


def test_reuse_of_an_unfinished_run_is_refused(tmp_path):
    spec = toy_separation()
    spec.reuse = str(tmp_path / "nothing")
    with pytest.raises(Exception, match="manifest|finished"):
        separate(toy_data(), spec, tmp_path / "c", progress=False)


def test_evidence_made_against_other_copies_is_refused_naming_the_difference(run_dir, tmp_path):
    import tracer
    from tracer.config import to_spec
    from tracer.attacks.generate import EvidenceSpec
    from tracer.stages import attack
    out, _ = run_dir
    run = _copy_run(out, tmp_path / "r")
    m = json.loads(run.manifest_path.read_text())
    m["alpha"] = 0.0           # copies that are all C agree on every label: a pool to attack
    write_json(run.manifest_path, m)
    copies = run.load_copies()
    spec = to_spec(tracer.compose("attack=[fgsm]", "attack.fgsm.factory.eps=0.9")).evidence.attacks[0]
    data = toy_data()
    with torch.no_grad():
        data.y_test = copies.predict(data.x_test)[:, 0]
    attack(copies, data, EvidenceSpec(attacks=[spec], num=3), run.path, progress=False)
    assert len(run.load_evidence("fgsm")) > 0             # fits the copies it was made against
    m["alpha"] = 0.05
    write_json(run.manifest_path, m)
    with pytest.raises(IntegrityError, match=r"evidence.npz: .*alpha 0.0 \(this run: 0.05\)"):
        run.load_evidence("fgsm")


def test_projection_keyed_copies_reload_and_an_edited_seed_is_refused(tmp_path):
    from dataclasses import replace
    spec = replace(toy_separation(), keying="projection", num_copies=120)
    copies = separate(toy_data(), spec, tmp_path / "r", progress=False)
    run = load_run(tmp_path / "r")
    m = run.manifest
    assert m["keying"] == "projection" and "permutations" not in m
    assert len(m["accuracy"]["copy_clean_acc"]) == 120
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(run.load_copies().outputs(x), copies.outputs(x), atol=1e-6)
    m["projection_seed"] += 1
    write_json(run.manifest_path, m)
    with pytest.raises(IntegrityError, match="projections_sha256"):
        run.load_copies()
