"""Attack generation split over jobs by image ranges, and merged into one evidence set."""
import shutil
from dataclasses import replace

import pytest
import torch

from tracer.runs import Run
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


def _labelled_by_the_copies(family):
    """toy_data with every test image labelled as copy 0 labels it, so most are usable."""
    data = toy_data()
    with torch.no_grad():
        return replace(data, y_test=family.copy(0)(data.x_test).argmax(1))


def test_sharded_jobs_then_a_merge_give_the_evidence_one_job_gives(tmp_path):
    _, spec, _, _ = strong_pgd_case(1)
    family = separate(toy_data(), replace(toy_separation(), alpha=0.5), tmp_path / "one",
                      progress=False)
    shutil.copytree(tmp_path / "one", tmp_path / "split")
    data = _labelled_by_the_copies(family)
    kw = dict(num_evidence=6, sources=[0, 1], shards=2, progress=False)
    whole = attack(family, [spec], data, tmp_path / "one", **kw)["pgd"]
    for j in (0, 1):
        assert attack(family, [spec], data, tmp_path / "split", shard=j, **kw) == {}
        assert not Run(tmp_path / "split").evidence_path("pgd").exists()
    parts = sorted(p.name for p in (tmp_path / "split" / "attack" / "pgd" / "parts").iterdir())
    assert parts == [f"source_{s}_shard{j}of2.npz" for s in (0, 1) for j in (0, 1)]
    merged = attack(family, [spec], data, tmp_path / "split", **kw)["pgd"]
    assert 0 < len(merged) == len(whole) <= 6
    for field in ("x", "y_true", "y_adv", "source", "clean_index"):
        assert torch.equal(getattr(merged, field), getattr(whole, field)), field
    with pytest.raises(ValueError, match="shard 2"):
        attack(family, [spec], data, tmp_path / "split", shard=2, **kw)
