"""The attack stage: buyers' adversarial examples, made on their own copies under each attack's
threat model; writes ``attack/<name>/``."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from tracer.attacks.adaptive import AdaptiveSpec
from tracer.attacks.generate import AttackSpec, attack_copy, shared_pool
from tracer.data import ImageData
from tracer.evaluation.metrics import perturbation_norms
from tracer.evidence import Evidence
from tracer.io import sha256_file, write_json
from tracer.runs import CopySet, Run, copies_summary
from tracer.separation.train import predict_labels


def attack(family: CopySet, specs: list[AttackSpec], data: ImageData, out: str | Path, *,
           num_evidence: int, sources: list[int] | None = None, colluders: int = 1,
           adaptive: AdaptiveSpec | None = None, max_tries_factor: float = 3.0, seed: int = 0,
           shards: int = 1, shard: int | None = None, device: torch.device | str = "cpu",
           progress: bool = True) -> dict[str, Evidence]:
    """Run every attack from every source copy until ``num_evidence`` successful examples exist
    per attack (shared out evenly over the sources); writes ``attack/<name>/``.

    ``colluders`` > 1: consecutive sources form groups of that size, and each group attacks
    together (an example must fool all of its copies; the evidence names the group's first).
    ``adaptive``: every source is an attacker who knows tracer exists (attacks.adaptive).
    ``shards``: each source's images are cut into that many contiguous ranges, each with its
    share of the examples wanted and its own resume file, so that jobs can attack them apart:
    ``shard=j`` attacks range j only and writes no evidence (returns {}); a call without ``shard``
    attacks what is left and merges every range into the evidence, the same as if one job had
    done it all."""
    if shard is not None and not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    run = Run(out)
    sources = list(range(family.num_copies)) if sources is None else list(sources)
    groups = collusion_groups(sources, colluders)
    correct = predict_labels(family.outputs, data.x_test, device=device) == data.y_test[:, None]
    per_group = -(-num_evidence // len(groups))
    manifest_sha = sha256_file(run.manifest_path)
    results = {}
    for spec in specs:
        if run.stage_done("attack", spec.name):
            results[spec.name] = run.load_evidence(spec.name)
            continue
        start = time.time()
        parts, tried = [], 0
        for rank, group in enumerate(groups):
            pool = shared_pool(correct, len(groups), rank, seed)[:int(per_group * max_tries_factor)]
            tag = "-".join(map(str, group))
            for j, (images, wanted) in enumerate(shard_ranges(pool, per_group, shards)):
                if shard is not None and j != shard:
                    continue
                name = f"source_{tag}.npz" if shards == 1 else f"source_{tag}_shard{j}of{shards}.npz"
                ev, n_tried = attack_copy(family, group[0] if colluders == 1 else group, spec,
                                          data.x_test, data.y_test, images, wanted,
                                          device=device, progress=progress,
                                          seed=seed * 1000 + group[0] + 7919 * j,
                                          part=run.attack_dir(spec.name) / "parts" / name,
                                          adaptive=adaptive, train_images=data.x_train)
                parts.append(ev)
                tried += n_tried
        if shard is not None:
            continue
        evidence = Evidence.concat(parts)
        evidence.params = {k: v for k, v in evidence.params.items() if k != "tried"}
        path = run.evidence_path(spec.name)
        evidence.save(path)
        seconds = round(time.time() - start, 1)
        write_json(run.attack_dir(spec.name) / "attack.json", {
            "attack": evidence.attack, "name": spec.name, "threat": spec.threat,
            "budget": spec.budget, "num_evidence": len(evidence), "num_tried": tried,
            "success_rate": len(evidence) / tried if tried else None,
            "mean_queries": float(evidence.queries.float().mean()) if len(evidence) else None,
            "perturbation": perturbation_norms(evidence.x, data.x_test[evidence.clean_index]),
            "sources": sources, "groups": groups,
            "adaptive": asdict(adaptive) if adaptive else None, "evidence_sha256": sha256_file(path),
            "manifest_sha256": manifest_sha, "made_against": copies_summary(run.manifest),
            "seconds": seconds})
        run.mark("attack", "done", key=spec.name, seconds=seconds)
        results[spec.name] = evidence
    return results


def shard_ranges(pool: torch.Tensor, wanted: int, shards: int) -> list[tuple[torch.Tensor, int]]:
    """``pool`` cut into ``shards`` contiguous ranges, each with its share of ``wanted`` (the
    shares differ by at most one and sum to ``wanted``)."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    shares = [wanted // shards + (j < wanted % shards) for j in range(shards)]
    return list(zip(torch.tensor_split(pool, shards), shares))


def collusion_groups(sources: list[int], colluders: int) -> list[list[int]]:
    """Consecutive groups of ``colluders`` sources (one buyer each when 1)."""
    if colluders < 1 or len(sources) % colluders:
        raise ValueError(f"colluders={colluders} must divide the {len(sources)} sources "
                         f"{sources} into whole groups")
    return [sources[i:i + colluders] for i in range(0, len(sources), colluders)]
