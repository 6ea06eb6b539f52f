"""tracer investigate: image files from an incident, traced with the run's calibrated threshold."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tracer
from tracer.abstention import stored_threshold
from tracer.stages import traced_evidence
from tracer.tracing import named

ROOT = Path(__file__).resolve().parents[2]


def investigate(*args):
    return subprocess.run([sys.executable, "-m", "tracer.cli", "investigate", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def traced_example(run):
    """An HSJA example the run names (at its threshold) correctly, with its source."""
    ev = run.load_evidence("hsja")
    cal = json.loads(run.calibration_path.read_text())
    scores = traced_evidence(run.load_copies(), ev).scores[cal["scorer"]]
    ok = (named(scores, stored_threshold(cal["threshold"])) == ev.source).nonzero().flatten()
    assert len(ok), "the tiny run names no HSJA example: the test proves nothing"
    i = int(ok[0])
    return ev.x[i].numpy(), int(ev.source[i])


def test_an_evidence_array_names_its_source_and_the_report_records_everything(tiny_run, tmp_path):
    x, source = traced_example(tiny_run)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", image=x)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "blank.png")
    report = tmp_path / "report.json"
    proc = investigate(tiny_run.path, tmp_path / "a.npy", tmp_path / "b.npz",
                       tmp_path / "blank.png", "--json", report)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'a.npy'}: copy {source} ")
    assert "confidence" in lines[0] and "next: copy" in lines[0]
    assert lines[2].endswith(")") and "no match" in lines[2]   # a blank image accuses nobody
    r = json.loads(report.read_text())
    cal = json.loads(tiny_run.calibration_path.read_text())
    assert r["scorer"] == cal["scorer"] and r["threshold"] == cal["threshold"]
    assert r["tracer_version"] == tracer.__version__ and r["time"]
    assert len(r["manifest_sha256"]) == 64
    a, b, blank = r["files"]
    assert a["named"] == b["named"] == source and blank["named"] is None
    assert len(a["sha256"]) == 64 and a["sha256"] != b["sha256"]
    assert [c["copy"] for c in a["candidates"]][0] == source and len(a["candidates"]) == 3
    assert 0 <= a["confidence"] <= 1


def test_each_bad_file_gets_one_line_and_the_others_are_still_investigated(tiny_run, tmp_path):
    x, source = traced_example(tiny_run)
    np.save(tmp_path / "good.npy", x)
    Image.fromarray(np.zeros((9, 8), dtype=np.uint8)).save(tmp_path / "size.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    np.save(tmp_path / "channels.npy", np.zeros((3, 8, 8), dtype=np.float32))
    np.save(tmp_path / "range.npy", np.full((1, 8, 8), 1.5, dtype=np.float32))
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "full.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "full.png").read_bytes()[:40])
    (tmp_path / "text.png").write_text("not an image")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad = ["size.png", "cmyk.jpg", "channels.npy", "range.npy", "truncated.png", "text.png",
           "pickled.npy", "missing.npy"]
    proc = investigate(tiny_run.path, *[tmp_path / b for b in bad], tmp_path / "good.npy")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(bad), errors
    for b, line in zip(bad, errors):
        assert line.startswith("tracer investigate: ") and b in line, (b, line)
    assert "size" in errors[0] and "mode CMYK" in errors[1] and "shape (3, 8, 8)" in errors[2]
    assert "outside [0, 1]" in errors[3]
    assert proc.stdout.strip().startswith(f"{tmp_path / 'good.npy'}: copy {source} ")


def test_a_run_without_calibration_is_refused(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    (run / "innocent" / "calibration.json").unlink()
    np.save(tmp_path / "a.npy", np.zeros((1, 8, 8), dtype=np.float32))
    proc = investigate(run, tmp_path / "a.npy")
    assert proc.returncode == 2 and "no calibration" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
