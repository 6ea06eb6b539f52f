"""Data-parallel training: how a batch is shared out (the torchrun run itself: tests/e2e)."""
import pytest

from tracer import distributed


@pytest.mark.parametrize("n,world", [(7, 2), (128, 2), (10, 3), (1, 2), (2, 4)])
def test_shares_cover_the_batch_and_their_weights_sum_to_one(monkeypatch, n, world):
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    rows, weights = [], []
    for r in range(world):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        share, weight = distributed.batch_share(n)
        rows.append(list(range(n))[share])
        weights.append(weight)
    assert sum(weights) == pytest.approx(1.0)
    if n >= world:   # contiguous, disjoint, in order, sizes within one of each other
        assert sum(rows, []) == list(range(n))
        assert max(map(len, rows)) - min(map(len, rows)) <= 1
    else:            # too few rows to share: every process takes the whole batch, weighted 1/w
        assert all(r == list(range(n)) for r in rows)


def test_alone_a_process_takes_every_row_at_weight_one():
    assert distributed.batch_share(5) == (slice(0, 5), 1.0)
    assert distributed.is_main() and distributed.world_size() == 1
