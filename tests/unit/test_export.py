"""A sold copy: the run's copy i as a module of its own, holding copy i's key and no other's."""
import pytest
import torch
from torch import nn

from tracer.baselines import IndependentCopies, MaskedCopies, random_masks

from conftest import tiny_copies

KEY_NAMES = ("permutations", "projections")   # every copy's keys, as a copy set holds them


def one_member():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()


CASES = {
    "residual, permutation keys": lambda: tiny_copies(3),
    "residual, projection keys": lambda: tiny_copies(3, keying="projection"),
    "debiased residual, projection keys": lambda: tiny_copies(3, keying="projection",
                                                              reads="debiased"),
    "paper's VAE tracer": lambda: tiny_copies(3, method="paper"),
    "naive copies": lambda: IndependentCopies([one_member() for _ in range(3)], 10).eval(),
    "watermark": lambda: MaskedCopies([one_member() for _ in range(3)],
                                      random_masks(3, (1, 8, 8), 0.1), 10).eval(),
}


@pytest.mark.parametrize("case", CASES)
def test_sold_copy_is_the_copy_and_holds_its_key_only(case):
    copies = CASES[case]()
    x = torch.rand(6, 1, 8, 8)
    for i in range(copies.num_copies):
        sold = copies.sold(i).eval()
        with torch.no_grad():
            assert torch.allclose(sold(x), copies.copy(i)(x), atol=1e-6), (case, i)
        names = [n for n, _ in sold.named_buffers()]
        assert not any(n.split(".")[-1] in KEY_NAMES for n in names), names
        mine = {n: b for n, b in sold.named_buffers()
                if n.split(".")[-1] in ("permutation", "projection", "keep")
                and n != "tracer.base_tracer.projection"}   # T_0's own P, shared by every copy
        assert mine or case == "naive copies", names   # a keyed copy holds its own key
        for n, b in mine.items():   # the one key it holds is copy i's
            if hasattr(copies, "permutations"):
                assert torch.equal(b, copies.permutations[i]), n
            elif hasattr(copies, "projections"):
                assert torch.equal(b, copies.projections[i]), n
            else:
                assert torch.equal(b, copies.keep[i]), n


def test_sold_refuses_an_index_out_of_range():
    with pytest.raises(IndexError):
        tiny_copies(3).sold(3)
