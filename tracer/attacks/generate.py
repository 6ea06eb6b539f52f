"""Evidence generation: a buyer attacks its own copy; we keep what fools that copy.

Each source copy attacks its own disjoint share of the test images that every copy classifies
correctly. Progress is saved per source after every chunk of images, so an interrupted stage
loses at most the chunk in progress and resumes where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from tracer.attacks.adaptive import AdaptiveSpec, attacker_model, post_process
from tracer.attacks.oracle import THREATS, make_view
from tracer.evidence import Evidence
from tracer.models.predict import predict_labels
from tracer.progress import bar as progress_bar
from tracer.seeding import derived_seed

if TYPE_CHECKING:
    from tracer.methods import CopySet


class Attack(Protocol):
    last_queries: Tensor

    def perturb(self, x: Tensor, y: Tensor | None = None) -> Tensor: ...


@dataclass
class AttackSpec:
    """One attack of the zoo: how to build it from the attacker's view, and its budget.

    ``factory(view)`` returns an :class:`Attack`; ``view`` is what ``threat`` allows
    (attacks.oracle). ``budget`` caps the queries per image (None: no cap).
    """
    name: str
    threat: str
    factory: Callable[[Any], Attack]
    budget: int | None = None
    batch_size: int = 16

    def __post_init__(self):
        if self.threat not in THREATS:
            raise ValueError(f"attack {self.name}: unknown threat {self.threat!r}; known: {THREATS}")


@dataclass
class EvidenceSpec:
    """What the attack stage makes: ``attacks``, each run from every source until ``num``
    successful examples exist (shared out evenly over the sources), by ``adaptive``'s attacker."""
    attacks: list[AttackSpec] = field(default_factory=list)
    num: int = 200                     # successful examples per attack, over all sources
    sources: list[int] | None = None   # None: every copy is a source in turn
    colluders: int = 1                 # buyers per group attacking together
    max_tries_factor: float = 3.0      # a source gives up after this many times its share
    shards: int = 1                    # contiguous image ranges per source, each its own unit
    shard: int | None = None           # attack this range only (a cluster job); None: all, merged
    adaptive: AdaptiveSpec = field(default_factory=AdaptiveSpec)

    def __post_init__(self):
        if self.num < 1:
            raise ValueError(f"evidence.num must be at least 1, got {self.num}")
        if self.shards < 1:
            raise ValueError(f"evidence.shards must be at least 1, got {self.shards}")
        if self.shard is not None and not 0 <= self.shard < self.shards:
            raise ValueError(f"evidence.shard {self.shard} outside 0..{self.shards - 1}")


def shared_pool(correct: Tensor, num_sources: int, source_rank: int, seed: int = 0) -> Tensor:
    """Indices of source ``source_rank``'s images: a seeded shuffle of the images every copy
    classifies correctly (``correct`` [n, m] bool), dealt out round-robin so sources never share."""
    ok = correct.all(dim=1).nonzero().flatten()
    order = ok[torch.randperm(len(ok), generator=torch.Generator().manual_seed(seed))]
    return order[source_rank::num_sources]


class Colluders(nn.Module):
    """What colluding buyers attack together: each query goes to every colluder's copy, and the
    answer is adversarial only when all of them are fooled.

    With ``label`` set (the clean label of the one image under attack; hard-label attacks), an
    input that leaves any colluder at ``label`` is answered with ``label`` itself, so that the
    attack's own success test means "fools every colluder"; otherwise (and with no label: the
    score-based and white-box attacks, which need the mean's scores or gradient) the answer is
    the mean of the copies' outputs. A hard-label attack on the plain mean stops at the mean's
    boundary, between the colluders' own, and fooled both of two colluders only 7% of the time
    on fashion_mnist (Boundary).
    """

    def __init__(self, copies: list[nn.Module]):
        super().__init__()
        self.copies = nn.ModuleList(copies)
        self.label: int | None = None

    def forward(self, x: Tensor) -> Tensor:
        outs = torch.stack([c(x) for c in self.copies])
        mean = outs.mean(dim=0)
        if self.label is None:
            return mean
        all_fooled = (outs.argmax(-1) != self.label).all(dim=0, keepdim=True).T
        held = torch.zeros_like(mean)
        held[:, self.label] = mean.abs().amax(dim=1) + 1.0   # the clean label, on top
        return torch.where(all_fooled, mean, held)


def attack_copy(copies: CopySet, source: int | list[int], spec: AttackSpec, x: Tensor,
                y: Tensor, pool: Tensor, n_wanted: int, *, device: torch.device | str = "cpu",
                part: Path | None = None, progress: bool = True, seed: int = 0,
                adaptive: AdaptiveSpec | None = None,
                train_images: Tensor | None = None) -> tuple[Evidence, int]:
    """Attack copy ``source`` on images ``x[pool]`` until ``n_wanted`` succeed or the pool ends.
    A list of sources is a collusion: they attack the mean of their copies, and an example
    succeeds when it fools each of them; the evidence names the first as its source.

    Returns the successful evidence and how many images were tried. ``part`` is the resume file.
    Every chunk's randomness (torch's and numpy's, which ART draws from) is seeded from ``seed``
    and the chunk's position, so a resumed run gives the same evidence as an uninterrupted one.
    ``adaptive``: an attacker who knows tracer exists (attacks.adaptive; surrogate and finetune
    learn from ``train_images`` labelled by the copy); its evidence must still fool the copy.
    """
    group = [source] if isinstance(source, int) else list(source)
    members = [copies.copy(i).eval() for i in group]
    copy = members[0] if len(members) == 1 else Colluders(members).eval()
    target = copy
    if adaptive is not None and adaptive.kind != "none":
        target = attacker_model(adaptive, copy, train_images, copies.num_classes,
                                seed=seed, device=device)
    view = make_view(target, spec.threat, copies.num_classes, device, spec.budget)
    attack = spec.factory(view)
    kept, tried = _resume(part)
    meta = {"attack": repr(attack), "name": spec.name, "threat": spec.threat,
            "budget": spec.budget, "adaptive": adaptive.kind if adaptive else "none"}
    bar = progress_bar(total=n_wanted, initial=sum(len(e) for e in kept), disable=not progress,
                       desc=f"{spec.name} on copies {group}", leave=False)
    # Colluders under a hard-label attack answer for one image at a time (their answer depends on
    # its clean label); score-based and white-box attacks need the mean's gradient or scores.
    guarded = len(members) > 1 and spec.threat == "decision"
    chunk = 1 if guarded else spec.batch_size
    while (need := n_wanted - sum(len(e) for e in kept)) > 0 and tried < len(pool):
        # Never attack more images than still needed: every success is kept and counted.
        idx = pool[tried:tried + min(chunk, need)]
        chunk_seed = derived_seed(seed, f"attack_chunk_{tried}") % 2**32
        # torch's stream apart from the seed's own: manual_seed(seed)'s first normals are P's rows
        torch.manual_seed(derived_seed(chunk_seed, "attack_torch"))
        np.random.seed(chunk_seed)
        xb, yb = x[idx].to(device), y[idx].to(device)
        if guarded:
            copy.label = int(yb[0])
        x_adv = attack.perturb(xb, yb).detach()
        if adaptive is not None:
            x_adv = post_process(adaptive, x_adv.cpu(), chunk_seed).to(device)
        # the investigator's check, not a query: every colluder must be fooled
        labels = [predict_labels(m, x_adv, device=device) for m in members]
        ok = torch.stack([lab != yb.cpu() for lab in labels]).all(dim=0)
        y_adv = labels[0]
        ev = Evidence(x_adv.cpu()[ok], yb.cpu()[ok], y_adv[ok],
                      torch.full((int(ok.sum()),), group[0], dtype=torch.long),
                      attack.last_queries.cpu()[ok], idx[ok], attack=meta["attack"], params=meta)
        kept.append(ev)
        tried += len(idx)
        bar.update(len(ev))
        if part is not None:
            _save_part(part, kept, tried, meta)
    bar.close()
    return (Evidence.concat(kept) if kept else _empty(x, meta)), tried


def _resume(part: Path | None) -> tuple[list[Evidence], int]:
    if part is None or not part.is_file():
        return [], 0
    ev = Evidence.load(part, allow_empty=True)
    return [ev], int(ev.params.get("tried", 0))


def _save_part(part: Path, kept: list[Evidence], tried: int, meta: dict) -> None:
    merged = Evidence.concat(kept)
    merged.params = {**meta, "tried": tried}
    merged.save(part)


def _empty(x: Tensor, meta: dict) -> Evidence:
    z = torch.zeros(0, dtype=torch.long)
    return Evidence(x[:0].cpu(), z, z, z, z, z, attack=meta["attack"], params=meta)
