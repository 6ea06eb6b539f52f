import pytest
import torch

from tracer.separation.permutations import agreement, make_permutations


@pytest.mark.parametrize("k,m", [(10, 5), (10, 10), (10, 15), (7, 42), (43, 60), (43, 43 * 42)])
def test_permutations_agree_pairwise_on_at_most_one_position(k, m):
    perms = make_permutations(k, m, seed=3)
    assert perms.shape == (m, k)
    assert all(sorted(p.tolist()) == list(range(k)) for p in perms)
    agree = agreement(perms)
    off = agree[~torch.eye(m, dtype=torch.bool)]
    assert off.max() <= 1
    assert len({tuple(p.tolist()) for p in perms}) == m


def test_permutations_are_deterministic_in_seed():
    assert torch.equal(make_permutations(10, 15, seed=1), make_permutations(10, 15, seed=1))
    assert not torch.equal(make_permutations(10, 15, seed=1), make_permutations(10, 15, seed=2))


def test_agreement_counts_positions():
    perms = torch.tensor([[0, 1, 2], [0, 2, 1], [2, 1, 0]])
    assert agreement(perms).tolist() == [[3, 1, 1], [1, 3, 0], [1, 0, 3]]


def test_impossible_request_raises_clearly():
    with pytest.raises(ValueError, match="found only"):
        make_permutations(10, 90, max_tries=2000)
    with pytest.raises(ValueError, match="found only"):
        make_permutations(7, 43, max_tries=2000)  # more than K(K-1)
    with pytest.raises(ValueError):
        make_permutations(1, 2)
