"""Sweeps through Hydra's joblib and submitit_local launchers on the tiny configuration, merged by
scripts/make_tables.py; and attack generation sharded over a multirun and merged."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# one job at a time per launcher would hide nothing; two at once on 2 cores, one thread each
LAUNCHERS = {"joblib": ["hydra.launcher.n_jobs=2"],
             "submitit_local": ["hydra.launcher.timeout_min=10"]}
TINY = ["debug=tiny", "attack=[hsja]", "innocent.sets=[]", "evidence.num=12"]


def pipeline(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tracer.pipeline", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    # the second launcher's jobs take C and T_0 from the train cache the first one filled
    for name, extra in LAUNCHERS.items():
        pipeline("-m", *TINY, f"hydra/launcher={name}", *extra, "separation.alpha=0.1,0.15",
                 f"separation.train_cache={root / 'train_cache'}",
                 f"hydra.sweep.dir={root / name}")
    return root


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_each_launcher_runs_every_job_of_the_sweep(sweeps, launcher):
    alphas = sorted(json.loads((sweeps / launcher / job / "metrics.json").read_text())["alpha"]
                    for job in ("0", "1"))
    assert alphas == [0.1, 0.15]


def test_make_tables_merges_both_sweeps_and_their_runs_agree(sweeps, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tables.py"),
                    str(sweeps / "joblib"), str(sweeps / "submitit_local"), "--out",
                    str(tmp_path)], check=True, capture_output=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows = list(csv.DictReader((tmp_path / "tables.csv").open()))
    assert sorted(float(r["alpha"]) for r in rows) == [0.1, 0.15]
    for r in rows:
        # one run per launcher in each cell, same seed: identical figures (std 0)
        assert r["seeds"] == "2" and float(r["trace_acc_std"]) == 0.0, r


def test_attack_shards_run_as_a_multirun_into_one_run_and_merge(tmp_path):
    run = tmp_path / "run"
    pipeline(*TINY, "stage=separate", f"hydra.run.dir={run}")
    pipeline("-m", *TINY, "stage=attack", "evidence.shards=2", "evidence.shard=0,1",
             "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={run}",
             "hydra.sweep.subdir=.")
    parts = sorted(p.name for p in (run / "attack" / "hsja" / "parts").iterdir())
    assert len(parts) == 3 * 2 and all("of2" in p for p in parts)
    assert not (run / "attack" / "hsja" / "evidence.npz").exists()
    pipeline(*TINY, "evidence.shards=2", f"hydra.run.dir={run}")
    m = json.loads((run / "metrics.json").read_text())
    assert m["attacks"]["hsja"]["num_evidence"] == 12


def test_training_on_two_gloo_processes_matches_one_process(tmp_path):
    """torchrun, 2 CPU processes (gloo), each computing half of every batch."""
    import torch
    args = ["debug=tiny", "stage=separate", "model.train.epochs=2",
            "separation.tracer.train.epochs=3"]
    pipeline(*args, f"hydra.run.dir={tmp_path / 'one'}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2",
                           "-m", "tracer.pipeline", *args, f"hydra.run.dir={tmp_path / 'two'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "two" / "run.json").read_text())
    assert info["stages"]["separate"]["processes"] == 2
    for name in ("base.pt", "tracer_base.pt"):
        one, two = (torch.load(tmp_path / d / "separate" / name, weights_only=True)
                    for d in ("one", "two"))
        # Same batches, same noise, gradients summed: equal up to the order of float sums, which
        # Adam's normalisation lets move a near-zero gradient's step by up to lr (1e-3) a step.
        assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-2, name
    for name in ("history_base.csv", "history_tracer_base.csv"):
        rows = [list(csv.DictReader((tmp_path / d / "separate" / name).open()))
                for d in ("one", "two")]
        assert len(rows[0]) == len(rows[1])
        for a, b in zip(*rows):
            for key in a:   # losses to 0.1%; training accuracy to a couple of the 1,438 images
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-3, abs=2e-3), key
    accs = [json.loads((tmp_path / d / "separate" / "manifest.json").read_text())["accuracy"]
            for d in ("one", "two")]
    assert accs[0]["base_clean_acc"] == pytest.approx(accs[1]["base_clean_acc"], abs=0.01)
