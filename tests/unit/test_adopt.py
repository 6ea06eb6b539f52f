"""model.checkpoint: a vendor's trained C adopted (never unpickled, sha256 recorded, only the
tracer trained), a checkpoint that does not fit refused by name and key."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from tracer.io import IntegrityError, sha256_file
from tracer.models import build_base
from tracer.models.adopt import CheckpointMismatch, adopt_classifier, first_mismatch, read_state_dict
from tracer.runs import Run
from tracer.separation import trainer as trainer_module
from tracer.stages import separate
from tracer.stages.separating import input_spec

from conftest import toy_data, toy_separation


@pytest.fixture(scope="module")
def vendor_c():
    """A 'vendor's' trained C on the toy data: its network's weights, and the whole C."""
    data, spec = toy_data(), toy_separation()
    torch.manual_seed(7)
    base = build_base(spec.model, input_spec(data)).eval()
    return data, spec, base


def _with_checkpoint(spec, path):
    return dataclasses.replace(spec, model=dataclasses.replace(spec.model, checkpoint=str(path)))


@pytest.mark.parametrize("form", ["safetensors", "torch_backbone", "torch_whole"])
def test_a_checkpoint_in_each_form_gives_the_vendors_outputs(vendor_c, tmp_path, form):
    data, spec, base = vendor_c
    state = base.state_dict() if form == "torch_whole" else base[1].state_dict()
    path = tmp_path / ("c.safetensors" if form == "safetensors" else "c.pt")
    if form == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    adopted = adopt_classifier(path, spec.model, input_spec(data))
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(adopted(x), base(x))


def test_separation_adopts_c_trains_only_the_tracer_and_records_the_sha256(vendor_c, tmp_path,
                                                                            monkeypatch):
    data, spec, base = vendor_c
    path = tmp_path / "vendor.safetensors"
    save_file(base[1].state_dict(), str(path))

    def no_training(*args, **kwargs):
        raise AssertionError("C was trained although a checkpoint was given")

    monkeypatch.setattr(trainer_module, "train_classifier", no_training)
    copies = separate(data, _with_checkpoint(spec, path), tmp_path / "run", progress=False)
    run = Run(tmp_path / "run")
    m = run.manifest
    assert m["adopted_classifier"] == {"file": str(path.resolve()), "sha256": sha256_file(path)}
    assert m["model"]["checkpoint"] == str(path)
    assert not (run.separate_dir / "history_base.csv").exists()
    assert (run.separate_dir / "history_tracer_base.csv").exists()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(run.load_copies().base(x), base(x))
        assert torch.allclose(run.load_copies().outputs(x), copies.outputs(x), atol=1e-6)


def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_file_and_the_first_key(vendor_c,
                                                                                      tmp_path):
    data, spec, base = vendor_c
    state = base[1].state_dict()
    cases = {
        "wrong_shape.pt": ({**state, "0.weight": torch.zeros(5, 1, 3, 3)}, r"'0.weight' \(shape"),
        "missing.pt": ({k: v for k, v in state.items() if k != "0.bias"}, "'0.bias' .missing"),
        "extra.pt": ({**state, "fc.weight": torch.zeros(1)}, "'fc.weight' .not in the model"),
    }
    for name, (ckpt, match) in cases.items():
        torch.save(ckpt, tmp_path / name)
        with pytest.raises(CheckpointMismatch, match=f"{name}: does not fit small_cnn.*{match}"):
            adopt_classifier(tmp_path / name, spec.model, input_spec(data))
    with pytest.raises(CheckpointMismatch, match="wrong_shape.pt"):
        separate(data, _with_checkpoint(spec, tmp_path / "wrong_shape.pt"), tmp_path / "run",
                 progress=False)


def test_a_pickled_or_broken_checkpoint_is_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"net": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(IntegrityError, match="evil.pt: not a readable weights-only"):
        read_state_dict(tmp_path / "evil.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(IntegrityError, match="list.pt: not a state dict"):
        read_state_dict(tmp_path / "list.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(IntegrityError, match="bad.safetensors: not a readable safetensors"):
        read_state_dict(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match="nothing.pt: no such file"):
        read_state_dict(tmp_path / "nothing.pt")


def test_first_mismatch_reads_in_the_modules_order():
    a, b = torch.zeros(2), torch.zeros(3)
    assert first_mismatch({"x": a, "y": a}, {"x": a, "y": a}) is None
    assert first_mismatch({"x": a, "y": a}, {"x": b}).startswith("'x'")
    assert first_mismatch({"x": a, "y": a}, {"x": a, "z": a}).startswith("'y' (missing")


def test_a_manifest_naming_a_target_off_the_allow_list_is_refused_on_reload(vendor_c, tmp_path):
    data, spec, _ = vendor_c
    separate(data, spec, tmp_path / "run", progress=False)
    run = Run(tmp_path / "run")
    m = json.loads(run.manifest_path.read_text())
    m["model"] = {"arch": None, "kwargs": {}, "target": "os.system"}
    run.manifest_path.write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="not allowed"):
        run.load_copies()
