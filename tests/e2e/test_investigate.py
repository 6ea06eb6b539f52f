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


def named_examples(run, k):
    """k HSJA examples of one source, the source, and the run's calibration."""
    ev = run.load_evidence("hsja")
    source = int(ev.source[0])
    rows = (ev.source == source).nonzero().flatten()[:k]
    assert len(rows) == k, "the tiny run has too few HSJA examples of one source"
    return ev.x[rows].numpy(), source


def test_files_from_one_buyer_are_named_together_at_the_group_threshold(tiny_run, tmp_path):
    xs, source = named_examples(tiny_run, 6)
    files = []
    for i, x in enumerate(xs):
        np.save(tmp_path / f"{i}.npy", x)
        files.append(tmp_path / f"{i}.npy")
    report = tmp_path / "report.json"
    proc = investigate(tiny_run.path, *files, "--one-buyer", "--json", report)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 7                      # every file alone, then the six together
    cal = json.loads(tiny_run.calibration_path.read_text())
    r = json.loads(report.read_text())["together"]
    assert r["group_size"] == 5 and r["threshold"] == cal["group_thresholds"]["5"]
    assert r["files"] == [str(f) for f in files] and len(set(r["sha256s"])) == 6
    assert r["named"] == source and r["candidates"][0]["copy"] == source
    assert lines[-1].startswith("6 files together (threshold of groups of 5: ")
    assert f": copy {source} (score " in lines[-1]


def test_a_group_below_the_calibrated_sizes_or_with_a_bad_file_is_refused(tiny_run, tmp_path):
    xs, _ = named_examples(tiny_run, 5)
    for i, x in enumerate(xs):
        np.save(tmp_path / f"{i}.npy", x)
    few = investigate(tiny_run.path, *[tmp_path / f"{i}.npy" for i in range(3)], "--one-buyer")
    assert few.returncode == 2 and "Traceback" not in few.stderr
    assert "3 file(s) from one buyer" in few.stderr and "groups of 5, 10" in few.stderr
    assert len(few.stdout.splitlines()) == 3    # each file is still named alone
    (tmp_path / "text.png").write_text("not an image")
    bad = investigate(tiny_run.path, *[tmp_path / f"{i}.npy" for i in range(5)],
                      tmp_path / "text.png", "--one-buyer")
    assert bad.returncode == 2 and "not named together" in bad.stderr
    assert not any("together" in line for line in bad.stdout.splitlines())


def test_the_group_threshold_is_the_largest_calibrated_size_up_to_the_group(tiny_run):
    from tracer.investigate import BadInput, Investigator
    inv = Investigator(tiny_run)
    inv.calibration = {**inv.calibration, "group_thresholds": {"5": 0.3, "10": None}}
    assert inv.group_threshold(5) == (5, 0.3) and inv.group_threshold(9) == (5, 0.3)
    assert inv.group_threshold(10) == (10, None) and inv.group_threshold(40) == (10, None)
    with pytest.raises(BadInput, match="groups of 5, 10"):
        inv.group_threshold(4)
    inv.calibration = {k: v for k, v in inv.calibration.items() if k != "group_thresholds"}
    with pytest.raises(BadInput, match="calibrate stage again"):
        inv.group_threshold(20)
