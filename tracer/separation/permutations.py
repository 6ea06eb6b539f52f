"""The sellers' secret keys: one permutation of the tracer's K outputs per copy.

Any two permutations agree on at most ``max_agreement`` positions (paper.md: u = 1), so two copies
never share the pair of tracer outputs that sits behind a pair of classes.
"""
from __future__ import annotations

import torch
from torch import Tensor


def agreement(perms: Tensor) -> Tensor:
    """[m, K] permutations -> [m, m] number of positions where each pair agrees."""
    return (perms.unsqueeze(1) == perms.unsqueeze(0)).sum(-1)


def make_permutations(num_classes: int, num_copies: int, seed: int = 0, max_agreement: int = 1,
                      max_tries: int = 200_000) -> Tensor:
    """``num_copies`` permutations of ``range(num_classes)``, pairwise agreeing on at most
    ``max_agreement`` positions, deterministic in ``seed``.

    The first K are cyclic shifts of one random permutation (they agree nowhere); more are drawn
    at random and kept if they respect the bound. For K a prime power up to K(K-1) exist; for
    other K fewer do, and this raises once ``max_tries`` draws find no new one.
    """
    if num_classes < 2 or num_copies < 1:
        raise ValueError("need at least 2 classes and 1 copy")
    gen = torch.Generator().manual_seed(seed)
    base = torch.randperm(num_classes, generator=gen)
    k = torch.arange(num_classes)
    perms = [base[(k + s) % num_classes] for s in range(min(num_copies, num_classes))]
    tries = 0
    while len(perms) < num_copies:
        cand = torch.randperm(num_classes, generator=gen)
        if all(int((cand == p).sum()) <= max_agreement for p in perms):
            perms.append(cand)
            tries = 0
            continue
        tries += 1
        if tries >= max_tries:
            raise ValueError(f"found only {len(perms)} permutations of {num_classes} outputs "
                             f"agreeing on <= {max_agreement} positions; asked for {num_copies}")
    return torch.stack(perms)
