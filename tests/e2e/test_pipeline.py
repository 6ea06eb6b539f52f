"""The tiny configuration end to end: digits, 3 copies, real attacks, every metrics.json field."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tracer
from tracer.abstention import detection_rate, rate_upper_bound, stored_threshold
from tracer.evaluation.metrics import AttackMetrics, RunMetrics
from tracer.runs import Run

ROOT = Path(__file__).resolve().parents[2]


def test_metrics_json_has_every_field(tiny_run):
    m = json.loads(tiny_run.metrics_path.read_text())
    top = {f for f in RunMetrics.__dataclass_fields__}
    assert top <= set(m)
    assert m["dataset"] == "digits" and m["num_copies"] == 3 and m["alpha"] == 0.15
    assert 0.8 <= m["base_clean_acc"] <= 1 and len(m["copy_clean_acc"]) == 3
    assert set(m["attacks"]) == {"hsja", "pgd"}
    for name, a in m["attacks"].items():
        assert set(AttackMetrics.__dataclass_fields__) <= set(a), name
        assert 0 <= a["detection_rate"] <= a["trace_acc"] <= 1, name
        assert a["num_evidence"] == 30
        # 30 examples from 3 copies: groups of 5 and 10 from each source, tested together
        assert set(a["by_group_size"]) == {"5", "10"}, name
        for rates in a["by_group_size"].values():
            assert 0 <= rates["detection_rate"] <= 1 - rates["wrong_accusation_rate"], name
        for key in ("success_rate", "transfer_rate", "trace_acc"):
            assert 0 <= a[key] <= 1, (name, key)
        assert a["mean_queries"] > 0


def test_innocent_sets_are_traced_and_the_threshold_keeps_false_accusations_down(tiny_run):
    m = json.loads(tiny_run.metrics_path.read_text())
    assert set(m["innocent"]) == {"clean", "gaussian", "jpeg", "independent_hsja",
                                  "independent_pgd"}
    calib = json.loads((tiny_run.path / "innocent" / "calibration.json").read_text())
    for name, inn in m["innocent"].items():
        # PGD's set asks for 200, as many as digits' pool of images the independent model
        # classifies right allows (3 candidates per example asked for: all of them here)
        assert inn["num"] == 40 or (name == "independent_pgd" and 100 <= inn["num"] <= 200), name
        held_out = inn["num"] - inn["num"] // 2
        # what was asked for: no half of < 300 shows <= 1% at 95% confidence, so none is accused
        assert inn["false_accusation_rate_calibration"] == 0.0, name
        assert 0 <= inn["false_accusation_rate"] <= 1, name             # held out: measured
        assert set(inn["false_accusation_rate_by_group_size"]) == {"5", "10"}, name
        assert all(0 <= r <= 1 for r in inn["false_accusation_rate_by_group_size"].values())
        assert inn["false_accusation_bound"] == pytest.approx(rate_upper_bound(
            round(held_out * inn["false_accusation_rate"]), held_out, 0.95)), name
        # innocent images are stored and traced like evidence, with no source
        ev = tiny_run.load_innocent(name)
        assert len(ev) == inn["num"] and (ev.source == -1).all()
    assert m["abstain_threshold"] == calib["threshold"] and calib["confidence"] == 0.95
    assert len(calib["curve"]) > 2
    assert calib["group_sizes"] == [5, 10] and set(calib["group_thresholds"]) == {"5", "10"}


def test_calibrate_reruns_for_another_scorer_and_traces_the_attacks_with_it(tiny_run):
    from tracer.stages import traced_evidence
    path = tiny_run.path / "innocent" / "calibration.json"
    before = json.loads(path.read_text())
    tracer.run(tracer.compose("debug=tiny", "stage=calibrate"), tiny_run.path)
    assert json.loads(path.read_text()) == before                       # same settings: kept
    try:
        tracer.run(tracer.compose("debug=tiny", "stage=calibrate", "trace.scorer=dol"),
                   tiny_run.path)
        other = json.loads(path.read_text())
        assert other["scorer"] == "dol" and other["threshold"] != before["threshold"]
        copies, ev = tiny_run.load_copies(), tiny_run.load_evidence("hsja")
        scores = traced_evidence(copies, ev).scores["dol"]
        assert other["attacks"]["hsja"]["detection_rate"] == detection_rate(
            scores, ev.source, other["threshold"])
        # the run's config now says dol: a command that leaves the scorer out keeps it
        tracer.run(tracer.compose("debug=tiny", "stage=calibrate"), tiny_run.path)
        assert json.loads(path.read_text())["scorer"] == "dol"
    finally:   # the other tests read the default calibration; auto is the default, so named
        tracer.run(tracer.compose("debug=tiny", "stage=calibrate", "trace.scorer=auto"),
                   tiny_run.path, named=("trace.scorer",))
    assert json.loads(path.read_text()) == before


def test_calibrate_remakes_an_innocent_set_asked_for_at_another_size(tiny_run):
    path = tiny_run.path / "innocent" / "calibration.json"
    before = json.loads(path.read_text())
    independent = tiny_run.load_innocent("independent_hsja")
    try:
        tracer.run(tracer.compose("debug=tiny", "stage=calibrate", "innocent.num=50",
                                  "innocent.num_adversarial=30",
                                  "innocent.num_adversarial_by_attack.pgd=36"), tiny_run.path)
        calib = json.loads(path.read_text())
        assert {k: v["num"] for k, v in calib["innocent"].items()} == {
            "clean": 50, "gaussian": 50, "jpeg": 50, "independent_hsja": 30,
            "independent_pgd": 36}
        assert len(tiny_run.load_innocent("jpeg")) == 50
        # fewer adversarial examples: the first ones made, not a new attack
        assert torch.equal(tiny_run.load_innocent("independent_hsja").x, independent.x[:30])
    finally:   # the other tests read the default calibration
        tracer.run(tracer.compose("debug=tiny", "stage=calibrate"), tiny_run.path)
    assert json.loads(path.read_text()) == before


def test_calibrate_reruns_for_an_attack_added_to_the_run(tiny_run, tmp_path):
    import shutil
    from tracer.io import write_json
    run = tracer.load_run(shutil.copytree(tiny_run.path, tmp_path / "run"))
    before = json.loads(run.calibration_path.read_text())
    # as calibrated before PGD's evidence was made: PGD has no detection rate
    write_json(run.calibration_path, {**before, "attacks": {"hsja": before["attacks"]["hsja"]}})
    tracer.run(tracer.compose("debug=tiny", "stage=calibrate"), run.path)
    assert json.loads(run.calibration_path.read_text()) == before


def test_calibrate_trains_the_independent_model_as_the_runs_c_was_trained(tiny_run, tmp_path,
                                                                         monkeypatch):
    import shutil
    from tracer.io import write_json
    from tracer.separation.trainer import Trainer
    run = tracer.load_run(shutil.copytree(tiny_run.path, tmp_path / "run"))
    shutil.rmtree(run.innocent_dir)
    info = run.info()
    del info["stages"]["calibrate"]
    recorded = info["stages"]["separate"]["spec"]["classifier"]
    recorded["epochs"] += 1         # not what today's configuration says
    write_json(run.run_json, info)
    seen = []

    def classifier(self, name, seed):
        seen.append(self.spec.classifier)
        raise InterruptedError("enough: the independent model's training was decided")
    monkeypatch.setattr(Trainer, "classifier", classifier)
    with pytest.raises(InterruptedError):
        tracer.run(tracer.compose("debug=tiny", "stage=calibrate"), run.path)
    assert seen and seen[0].epochs == recorded["epochs"] and \
        seen[0].random_share == recorded["random_share"]


def test_threshold_splits_reads_a_finished_run(tiny_run, capsys):
    import runpy
    main = runpy.run_path(str(ROOT / "scripts" / "threshold_splits.py"))["main"]
    result = main([str(tiny_run.path), "--splits", "4"])     # the run's target and confidence
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    assert result["scorer"] == "nearest_flip" and result["splits"] == 4
    assert result["confidence"] == 0.95 and result["max_false_accusation"] == 0.01
    assert 0 <= result["share_above_target"] <= 1 and set(result["detection"]) == {"hsja", "pgd"}


def test_attack_anatomy_reads_a_finished_run(tiny_run, capsys):
    import runpy
    main = runpy.run_path(str(ROOT / "scripts" / "attack_anatomy.py"))["main"]
    result = main([str(tiny_run.path), "--images", "100"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    assert result["scorer"] == "nearest_flip"
    assert set(result["fooled_by_chance"]) == {"stripes", "signs", "blocks"}
    assert all(0 <= v <= 1 for v in result["fooled_by_chance"].values())
    for name in ("hsja", "pgd"):
        a = result["attacks"][name]
        assert a["num"] == sum(b["num"] for b in a["by_queries"]) > 0
        assert 0 <= a["oracle_traced"] <= 1
        lost = a["detection_lost"]            # detected <= nameable, both among the traced
        assert 0 <= lost["detected"] <= lost["nameable"] <= 1 and 0 < lost["traced"] <= 1


def test_scorer_ceiling_reads_a_finished_run(tiny_run, capsys):
    import runpy
    main = runpy.run_path(str(ROOT / "scripts" / "scorer_ceiling.py"))["main"]
    rows = main([str(tiny_run.path), "--folds", "2"])
    table = capsys.readouterr().out
    assert {r["attack"] for r in rows} == {"hsja", "pgd"}
    for r in rows:
        assert all(0 <= r[k] <= 1 for k in ("default", "fitted_unseen", "fitted_alone",
                                                "fitted_seen"))
        assert f"| {r['attack']} | {r['n']} | {100 * r['default']:.1f}% |" in table


def test_unseen_innocent_reads_a_finished_run(tiny_run, capsys):
    import runpy
    from tracer.evaluation.unseen import UNSEEN
    main = runpy.run_path(str(ROOT / "scripts" / "unseen_innocent.py"))["main"]
    result = main([str(tiny_run.path), "--images", "50"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    assert result["scorer"] == "nearest_flip" and result["images"] == 50
    assert result["target"] == 0.01
    assert set(result["false_accusation_rate"]) == set(UNSEEN)
    assert all(0 <= r <= 1 for r in result["false_accusation_rate"].values())


def test_a_run_made_before_common_directions_gets_the_ones_separation_makes(tiny_run, tmp_path):
    import runpy
    import shutil
    from tracer.io import read_json, sha256_file, write_json
    old = tmp_path / "old"
    shutil.copytree(tiny_run.path, old)
    run = tracer.load_run(old)
    made = run.load_copies().common
    # what a run made before them held: no file, no manifest entry, evidence stamped to match
    m = run.manifest
    del m["common_directions"], m["files"]["common_directions.npy"]
    (run.separate_dir / "common_directions.npy").unlink()
    write_json(run.manifest_path, m)
    for name in run.attacks():
        record = read_json(run.attack_dir(name) / "attack.json")
        write_json(run.attack_dir(name) / "attack.json",
                   {**record, "manifest_sha256": sha256_file(run.manifest_path)})
    assert run.load_copies().common is None
    main = runpy.run_path(str(ROOT / "scripts" / "add_common_directions.py"))["main"]
    main([str(old)])
    assert torch.equal(run.load_copies().common, made)
    assert len(run.load_evidence("hsja")) == 30                 # still the run's evidence
    with pytest.raises(SystemExit, match="already"):
        main([str(old)])


def test_every_file_of_the_run_directory(tiny_run):
    p = tiny_run.path
    for rel in ("config.yaml", "run.json", "metrics.json", "results.md", "separate/manifest.json",
                "separate/base.pt", "separate/tracer_base.pt", "separate/history_base.csv",
                "separate/history_tracer_base.csv"):
        assert (p / rel).is_file(), rel
    for name in ("hsja", "pgd"):
        for rel in (f"attack/{name}/evidence.npz", f"attack/{name}/attack.json",
                    f"trace/{name}/scores.npy", f"trace/{name}/statistic.npy",
                    f"trace/{name}/verdicts.csv", f"trace/{name}/trace.json",
                    f"plots/{name}_statistic.png", f"plots/{name}_confusion.png",
                    f"plots/{name}_examples.png"):
            assert (p / rel).is_file(), rel
    info = json.loads((p / "run.json").read_text())
    assert all(s["status"] == "done" for s in info["stages"].values())
    assert info["versions"]["torch"]
    table = (p / "results.md").read_text()
    assert "| hsja |" in table and "| pgd |" in table


def test_tiny_run_traces_hopskipjump_evidence(tiny_run):
    """Issue 3's digits figure: HSJA evidence traced to its source copy at >= 90% (3 copies).
    (How long the run takes is benchmarks/bench_tiny_run.py's to measure.)"""
    m = json.loads(tiny_run.metrics_path.read_text())
    assert m["attacks"]["hsja"]["trace_acc"] >= 0.9


def test_deep_white_box_evidence_is_traced_or_abstained_on_never_pinned_on_a_wrong_copy(tiny_run):
    """Issue 16: Linf-PGD's examples fool C as well (they transfer), yet at the calibrated
    threshold no example names a copy that is not its source."""
    from tracer.tracing import named
    ev = tiny_run.load_evidence("pgd")
    threshold = stored_threshold(json.loads(tiny_run.calibration_path.read_text())["threshold"])
    scores = tiny_run.load_scores("pgd")
    verdicts = named(scores, threshold)
    pgd = json.loads(tiny_run.metrics_path.read_text())["attacks"]["pgd"]
    assert len(ev) >= 20 and pgd["transfer_rate"] >= 0.5      # deep: most fool C as well
    wrong = (verdicts >= 0) & (verdicts != ev.source)
    assert not wrong.any(), f"{int(wrong.sum())} of {len(ev)} PGD examples named a wrong copy"
    assert pgd["wrong_accusation_rate"] == 0


def test_evidence_fools_its_source_copy(tiny_run):
    copies = tiny_run.load_copies()
    ev = tiny_run.load_evidence("hsja")
    labels = copies.predict(ev.x)
    assert (labels[range(len(ev)), ev.source] != ev.y_true).all()
    assert sorted(set(ev.source.tolist())) == [0, 1, 2]


def test_trace_stage_reruns_on_the_existing_run(tiny_run):
    before = json.loads(tiny_run.metrics_path.read_text())
    cfg = tracer.compose("debug=tiny", "stage=trace")
    tracer.run(cfg, tiny_run.path)
    after = json.loads(tiny_run.metrics_path.read_text())
    assert after["attacks"] == before["attacks"]


def test_a_stage_on_an_existing_run_takes_that_runs_config(tiny_run):
    """stage=trace without debug=tiny: the run's own config (digits, 3 copies), not the default
    one (fashion_mnist, 5 copies)."""
    before = json.loads(tiny_run.metrics_path.read_text())
    tracer.run(tracer.compose("stage=trace", "progress=false"), tiny_run.path)
    assert json.loads(tiny_run.metrics_path.read_text())["attacks"] == before["attacks"]
    saved = (tiny_run.path / "config.yaml").read_text()
    assert "name: digits" in saved and "stage: trace" in saved


def test_an_override_that_contradicts_a_finished_stage_is_refused(tiny_run):
    from tracer.config import ConfigConflict
    saved = (tiny_run.path / "config.yaml").read_text()
    with pytest.raises(ConfigConflict) as err:
        tracer.run(tracer.compose("debug=tiny", "stage=attack", "seed=5",
                                  "separation.alpha=0.3"), tiny_run.path)
    assert [line.split(":")[0] for line in err.value.lines] == ["seed", "separation.alpha"]
    assert "made with 0, this command asks 5" in err.value.lines[0]
    assert (tiny_run.path / "config.yaml").read_text() == saved     # nothing written
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "tracer.pipeline", "stage=attack",
                           "dataset=mnist", "attack.hsja.factory.max_iter=3", "seed=0",
                           f"hydra.run.dir={tiny_run.path}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("tracer: ")]
    assert [line.split(":")[1].strip() for line in lines[1:]] == [
        "attack.hsja.factory.max_iter", "dataset.name"]


def test_cli_runs_the_report_stage(tiny_run):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "tracer.pipeline", "debug=tiny", "stage=report",
                           f"hydra.run.dir={tiny_run.path}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| hsja |" in proc.stdout


def test_a_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL the CLI in the middle of the attack stage, rerun the same command: the finished run
    equals an uninterrupted one (both from the CLI: the test process's thread settings differ),
    bit for bit: the same seed gives the same copies, keys, evidence and verdicts."""
    def command(out):
        return [sys.executable, "-m", "tracer.pipeline", "debug=tiny", f"hydra.run.dir={out}"]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = subprocess.Popen(command(killed), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    part = killed / "attack" / "hsja" / "parts" / "source_0.npz"
    deadline = time.time() + 120
    while not part.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert part.exists(), "the run never reached the attack stage"
    info = json.loads((killed / "run.json").read_text())
    assert info["stages"]["separate"]["status"] == "done" and "report" not in info["stages"]
    for out in (killed, whole):
        done = subprocess.run(command(out), cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
    a, b = Run(whole), Run(killed)
    assert a.manifest["files"] == b.manifest["files"]            # sha256 of C and T_0
    keys = ("keying", "permutations", "projection_seed", "projections_sha256")
    assert [a.manifest.get(k) for k in keys] == [b.manifest.get(k) for k in keys]
    for name in ("hsja", "pgd"):
        first, second = a.load_evidence(name), b.load_evidence(name)
        assert torch.equal(first.x, second.x) and torch.equal(first.source, second.source), name
        assert torch.equal(first.queries, second.queries), name
        verdicts = [(r.path / "trace" / name / "verdicts.csv").read_text() for r in (a, b)]
        assert verdicts[0] == verdicts[1], name
    assert json.loads(a.metrics_path.read_text())["attacks"] == \
        json.loads(b.metrics_path.read_text())["attacks"]


def test_an_exported_copy_reloads_equal_and_its_attacks_trace_back_to_it(tiny_run, tmp_path):
    from tracer.attacks.generate import attack_copy
    from tracer.baselines import IndependentCopies
    from tracer.config import to_spec
    from tracer.data import load_dataset
    from tracer.stages import traced_evidence
    from tracer.tracing import Scores, named

    out = tmp_path / "copy1.pt"
    proc = subprocess.run([sys.executable, "-m", "tracer.cli", "export", str(tiny_run.path),
                           "--copy", "1", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shipped = torch.jit.load(str(out)).eval()
    copies = tiny_run.load_copies()
    data = load_dataset("digits")
    x = data.x_test[:200]
    with torch.no_grad():
        assert (shipped(x) - copies.copy(1)(x)).abs().max() <= 1e-5
    # the file holds copy 1's key only: no constant holds every copy's keys
    every_key = copies.permutations if hasattr(copies, "permutations") else copies.projections
    _, constants = shipped.code_with_constants
    tensors = [v for v in constants.const_mapping.values() if isinstance(v, torch.Tensor)]
    assert not any(t.shape == every_key.shape for t in tensors)
    # the buyer attacks the shipped file with the attack stage's own code; tracing names copy 1
    hsja = next(a for a in to_spec(tracer.compose("debug=tiny")).evidence.attacks
                if a.name == "hsja")
    buyer = IndependentCopies([shipped], copies.num_classes)   # the file as the buyer's model
    correct = copies.predict(data.x_test) == data.y_test[:, None]
    pool = correct.all(dim=1).nonzero().flatten()[:30]
    ev, _ = attack_copy(buyer, 0, hsja, data.x_test, data.y_test, pool, 20, progress=False)
    assert len(ev) >= 15
    scores = traced_evidence(copies, ev).scores[copies.scorers[0]]
    verdicts = named(Scores(scores.value, scores.eligible))
    assert (verdicts == 1).float().mean() >= 0.9, verdicts.tolist()


def test_export_refuses_a_copy_the_run_does_not_have(tiny_run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tracer.cli", "export", str(tiny_run.path),
                           "--copy", "7", "--out", str(tmp_path / "x.pt")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--copy 7" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.pt").exists()


def test_a_vendors_own_images_and_classifier_make_copies_that_export(tmp_path):
    """dataset=image_folder, then model.checkpoint adopting that run's C: the second run trains
    nothing (the tracer is reused), records the checkpoint's sha256, and its copies export with
    the data root read from the run's config.yaml."""
    from PIL import Image

    from tracer.io import sha256_file

    root = tmp_path / "images"
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 12), ("test", 6)):
        for k, cls in enumerate(("circle", "square", "cross")):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                px = (torch.rand(12, 12, 3, generator=gen) * 60 + 80 * k).to(torch.uint8)
                Image.fromarray(px.numpy()).save(root / split / cls / f"{i}.png")
    common = ("debug=tiny", "dataset=image_folder", f"dataset.root={root}",
              "dataset.image_size=8", "stage=separate", "model.train.epochs=2",
              "separation.tracer.train.epochs=2")
    first = tracer.run(tracer.compose(*common), tmp_path / "first")
    base = first.separate_dir / "base.pt"
    second = tracer.run(tracer.compose(*common, f"model.checkpoint={base}",
                                       f"separation.reuse={first.path}"), tmp_path / "second")
    m = second.manifest
    assert m["adopted_classifier"]["sha256"] == sha256_file(base)
    assert m["accuracy"]["base_clean_acc"] == first.manifest["accuracy"]["base_clean_acc"]
    assert not (second.separate_dir / "history_base.csv").exists()
    out = tmp_path / "copy2.pt"
    proc = subprocess.run([sys.executable, "-m", "tracer.cli", "export", str(second.path),
                           "--copy", "2", "--out", str(out), "--check-images", "18"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on 18 test images" in proc.stdout and out.is_file()
