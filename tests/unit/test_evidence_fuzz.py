"""Property-based tests over malformed evidence files: every one is refused with an
IntegrityError that names the file, never a traceback from inside numpy, zipfile or torch.

Two generators, 1,500 files in all: structured defects applied to a valid evidence set (wrong
dtype, rank, shape, range, NaN/Inf, labels, missing or extra fields, no images), and raw byte
damage to a valid file (truncation, overwritten bytes, garbage), where a file that happens to
survive must load as valid evidence.
"""
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracer.evidence import Evidence, EvidenceError
from tracer.io import IntegrityError

SHAPE, K = (1, 8, 8), 10
FUZZ = settings(max_examples=750, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid(n=3):
    rng = np.random.default_rng(0)
    return {"x": rng.random((n, *SHAPE), dtype=np.float32),
            "y_true": np.arange(n, dtype=np.int64) % K, "y_adv": (np.arange(n) + 1) % K,
            "source": np.zeros(n, np.int64), "queries": np.full(n, 100, np.int64),
            "clean_index": np.arange(n, dtype=np.int64), "attack": np.array("hsja"),
            "params": np.array("{}")}


def _bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


INT_FIELDS = ["y_true", "y_adv", "source", "queries", "clean_index"]


@st.composite
def malformed(draw):
    """A valid evidence dict with one defect that must be refused."""
    a = _valid(draw(st.integers(1, 4)))
    n = len(a["x"])
    defect = draw(st.sampled_from([
        "no_x", "x_dtype", "x_rank", "x_shape", "no_images", "nan", "inf", "range_hi",
        "range_lo", "label_hi", "label_neg", "int_dtype", "int_len", "text_field"]))
    if defect == "no_x":
        del a["x"]
    elif defect == "x_dtype":
        dtype = draw(st.sampled_from([np.uint8, np.int32, np.int64, np.bool_, np.complex64]))
        a["x"] = a["x"].astype(dtype)
    elif defect == "x_rank":
        rank = draw(st.sampled_from([0, 1, 2, 3, 5]))
        a["x"] = np.zeros((2,) * rank, np.float32)
    elif defect == "x_shape":
        c, h, w = draw(st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12))
                       .filter(lambda s: s != SHAPE))
        a["x"] = np.zeros((n, c, h, w), np.float32)
    elif defect == "no_images":
        a = {"x": np.zeros((0, *SHAPE), np.float32)}
    elif defect in ("nan", "inf", "range_hi", "range_lo"):
        value = {"nan": np.nan, "inf": draw(st.sampled_from([np.inf, -np.inf])),
                 "range_hi": draw(st.floats(1.01, 1e6)),
                 "range_lo": draw(st.floats(-1e6, -0.01))}[defect]
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, 63))
        a["x"].reshape(n, -1)[i, j] = value
    elif defect in ("label_hi", "label_neg"):
        field = draw(st.sampled_from(["y_true", "y_adv"]))
        a[field] = a[field].copy()
        a[field][draw(st.integers(0, n - 1))] = (draw(st.integers(K, 10**6)) if defect == "label_hi"
                                                 else draw(st.integers(-10**6, -1)))
    elif defect == "int_dtype":
        field = draw(st.sampled_from(INT_FIELDS))
        a[field] = a[field].astype(draw(st.sampled_from([np.float32, np.float64, np.bool_])))
    elif defect == "int_len":
        field = draw(st.sampled_from(INT_FIELDS))
        m = draw(st.integers(0, 6).filter(lambda m: m != n))
        a[field] = np.zeros(m, np.int64)
    else:
        field = draw(st.sampled_from(["attack", "params"]))
        a[field] = draw(st.sampled_from([np.zeros(2), np.array(["a", "b"]), np.array(3)]))
    return a


@FUZZ
@given(arrays=malformed())
def test_every_structured_defect_is_refused_naming_the_file(tmp_path, arrays):
    path = tmp_path / "bad.npz"
    path.write_bytes(_bytes(arrays))
    with pytest.raises(EvidenceError) as err:
        Evidence.load(path, shape=SHAPE, num_classes=K)
    assert str(path) in str(err.value)


@FUZZ
@given(data=st.data())
def test_damaged_bytes_are_refused_or_load_as_valid_evidence(tmp_path, data):
    raw = bytearray(_bytes(_valid()))
    kind = data.draw(st.sampled_from(["truncate", "overwrite", "garbage", "empty"]))
    if kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "overwrite":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif kind == "garbage":
        raw = bytearray(data.draw(st.binary(min_size=1, max_size=2048)))
    else:
        raw = bytearray()
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(raw))
    try:
        ev = Evidence.load(path, shape=SHAPE, num_classes=K)
    except IntegrityError as err:
        assert str(path) in str(err)
    else:   # the damage missed everything that matters: what loaded must be valid evidence
        assert ev.x.shape[1:] == SHAPE and len(ev) >= 1
        assert ev.x.isfinite().all() and ev.x.min() >= -1e-4 and ev.x.max() <= 1 + 1e-4
