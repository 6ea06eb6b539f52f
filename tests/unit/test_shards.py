"""Attack generation split over jobs by image ranges, and merged into one evidence set."""
import shutil
from dataclasses import replace

import pytest
import torch

from tracer.runs import Run
from tracer.attacks.generate import EvidenceSpec
from tracer.stages import attack, separate, shard_ranges

from conftest import strong_pgd_case, toy_data, toy_separation


def test_shard_ranges_cover_the_pool_in_order_and_share_the_examples_out():
    pool = torch.arange(10)
    ranges = shard_ranges(pool, 7, 3)
    assert torch.equal(torch.cat([r for r, _ in ranges]), pool)
    assert [w for _, w in ranges] == [3, 2, 2]
    assert shard_ranges(pool, 7, 1)[0][1] == 7
    with pytest.raises(ValueError, match="shards"):
        shard_ranges(pool, 7, 0)


def _labelled_by_the_copies(copies):
    """toy_data with every test image labelled as copy 0 labels it, so most are usable."""
    data = toy_data()
    with torch.no_grad():
        return replace(data, y_test=copies.copy(0)(data.x_test).argmax(1))


def test_sharded_jobs_then_a_merge_give_the_evidence_one_job_gives(tmp_path):
    _, spec, _, _ = strong_pgd_case(1)
    # alpha 0: the untrained copies are all C and agree on every label, so every image is usable
    copies = separate(toy_data(), replace(toy_separation(), alpha=0.0), tmp_path / "one",
                      progress=False)
    shutil.copytree(tmp_path / "one", tmp_path / "split")
    data = _labelled_by_the_copies(copies)
    def evidence(**kw):
        return EvidenceSpec(attacks=[spec], num=6, sources=[0, 1], shards=2, **kw)

    whole = attack(copies, data, evidence(), tmp_path / "one", progress=False)["pgd"]
    for j in (0, 1):
        assert attack(copies, data, evidence(shard=j), tmp_path / "split", progress=False) == {}
        assert not Run(tmp_path / "split").evidence_path("pgd").exists()
    parts = sorted(p.name for p in (tmp_path / "split" / "attack" / "pgd" / "parts").iterdir())
    assert parts == [f"source_{s}_shard{j}of2.npz" for s in (0, 1) for j in (0, 1)]
    merged = attack(copies, data, evidence(), tmp_path / "split", progress=False)["pgd"]
    assert 0 < len(merged) == len(whole) <= 6
    for field in ("x", "y_true", "y_adv", "source", "clean_index"):
        assert torch.equal(getattr(merged, field), getattr(whole, field)), field
    with pytest.raises(ValueError, match="shard 2"):
        evidence(shard=2)
