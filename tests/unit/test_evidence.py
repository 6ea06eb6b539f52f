import io
import zipfile

import numpy as np
import pytest
import torch

from tracer.evidence import Evidence, EvidenceError
from tracer.io import IntegrityError, atomic_write_bytes, load_npz, read_json, sha256_file, write_json


def _evidence(n=4):
    z = torch.arange(n)
    return Evidence(torch.rand(n, 1, 8, 8), z % 10, (z + 1) % 10, z % 3, z * 100, z,
                    attack="hsja(max_iter=3)", params={"budget": 100})


def test_round_trip(tmp_path):
    ev = _evidence()
    ev.save(tmp_path / "e.npz")
    back = Evidence.load(tmp_path / "e.npz", shape=(1, 8, 8), num_classes=10)
    assert torch.equal(back.x, ev.x) and back.attack == ev.attack and back.params == ev.params
    for f in ("y_true", "y_adv", "source", "queries", "clean_index"):
        assert torch.equal(getattr(back, f), getattr(ev, f))


def test_select_and_concat():
    ev = _evidence(5)
    sub = ev.select(torch.tensor([True, False, True, False, False]))
    assert len(sub) == 2 and sub.y_true.tolist() == [0, 2]
    assert len(Evidence.concat([ev, sub])) == 7
    with pytest.raises(EvidenceError):
        Evidence.concat([])


def _write(path, **arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("arrays,match", [
    ({"y_true": np.zeros(3, np.int64)}, "no field 'x'"),
    ({"x": np.zeros((2, 1, 8, 8), np.uint8)}, "dtype"),
    ({"x": np.zeros((2, 8, 8), np.float32)}, "shape"),
    ({"x": np.zeros((0, 1, 8, 8), np.float32)}, "no images"),
    ({"x": np.full((2, 1, 8, 8), np.nan, np.float32)}, "NaN"),
    ({"x": np.full((2, 1, 8, 8), 255.0, np.float32)}, "0..255"),
    ({"x": np.zeros((2, 3, 8, 8), np.float32)}, "another data set"),
    ({"x": np.zeros((2, 1, 8, 8), np.float32), "y_true": np.array([0, 12])}, "outside"),
    ({"x": np.zeros((2, 1, 8, 8), np.float32), "source": np.zeros(3, np.int64)}, "integers"),
    ({"x": np.zeros((2, 1, 8, 8), np.float32), "params": np.array(["{not json"])}, "one string"),
])
def test_malformed_evidence_is_refused_with_a_clear_message(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    _write(path, **arrays)
    with pytest.raises(EvidenceError, match=match) as err:
        Evidence.load(path, shape=(1, 8, 8), num_classes=10)
    assert str(path) in str(err.value)


def test_pickled_objects_are_never_loaded(tmp_path):
    path = tmp_path / "pickle.npz"
    _write(path, x=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(IntegrityError, match="pickle"):
        load_npz(path)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    ev = _evidence()
    ev.save(tmp_path / "e.npz")
    data = (tmp_path / "e.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError):
        Evidence.load(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(IntegrityError):
        Evidence.load(tmp_path / "text.npz")
    with pytest.raises(IntegrityError, match="not found"):
        Evidence.load(tmp_path / "missing.npz")


def test_sha256_mismatch_is_refused(tmp_path):
    ev = _evidence()
    ev.save(tmp_path / "e.npz")
    with pytest.raises(IntegrityError, match="sha256"):
        Evidence.load(tmp_path / "e.npz", expected_sha256="0" * 64)
    Evidence.load(tmp_path / "e.npz", expected_sha256=sha256_file(tmp_path / "e.npz"))


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        write_json(target, {"v": 2})
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_read_json_errors_name_the_file(tmp_path):
    (tmp_path / "x.json").write_text("{oops")
    with pytest.raises(IntegrityError, match="x.json"):
        read_json(tmp_path / "x.json")


def test_atomic_write_bytes_creates_parents(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b" / "c.bin", b"123")
    assert (tmp_path / "a" / "b" / "c.bin").read_bytes() == b"123"
    assert not zipfile.is_zipfile(tmp_path / "a" / "b" / "c.bin")
