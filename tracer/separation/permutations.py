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


def _is_prime(k: int) -> bool:
    return k >= 2 and all(k % d for d in range(2, int(k ** 0.5) + 1))


def make_permutations(num_classes: int, num_copies: int, seed: int = 0, max_agreement: int = 1,
                      max_tries: int = 20_000) -> Tensor:
    """``num_copies`` permutations of ``range(num_classes)``, pairwise agreeing on at most
    ``max_agreement`` positions, deterministic in ``seed``.

    For a prime K the affine maps ``k -> a k + b (mod K)`` give K(K-1) permutations that agree
    pairwise on at most one position (the bound of paper.md); they are relabelled by a random
    permutation and taken in a seeded random order. For other K, permutations are drawn at random
    and kept when they respect the bound, which finds fewer (19 for K = 10: no sharply
    2-transitive set exists on 10 points); this raises once ``max_tries`` draws in a row fail.
    """
    if num_classes < 2 or num_copies < 1:
        raise ValueError("need at least 2 classes and 1 copy")
    k = num_classes
    gen = torch.Generator().manual_seed(seed)
    relabel = torch.randperm(k, generator=gen)
    if _is_prime(k) and max_agreement >= 1 and num_copies <= k * (k - 1):
        idx = torch.arange(k)
        affine = torch.stack([(a * idx + b) % k for a in range(1, k) for b in range(k)])
        order = torch.randperm(len(affine), generator=gen)[:num_copies]
        return relabel[affine[order]]
    perms = torch.empty(0, k, dtype=torch.long)
    fails = 0
    while len(perms) < num_copies:
        cand = torch.randperm(k, generator=gen)
        if ((perms == cand).sum(1) <= max_agreement).all():
            perms = torch.cat([perms, cand[None]])
            fails = 0
            continue
        fails += 1
        if fails >= max_tries:
            raise ValueError(f"found only {len(perms)} permutations of {k} outputs agreeing on "
                             f"<= {max_agreement} positions; asked for {num_copies}")
    return perms
