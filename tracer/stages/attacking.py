"""The attack stage: buyers' adversarial examples, made on their own copies under each attack's
threat model; writes ``attack/<name>/``."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from tracer.attacks.generate import EvidenceSpec, attack_copy, shared_pool
from tracer.data import ImageData
from tracer.evaluation.metrics import perturbation_norms
from tracer.evidence import Evidence
from tracer.io import sha256_file, write_json
from tracer.methods import CopySet
from tracer.models.predict import predict_labels
from tracer.runs import Run, manifest_summary
from tracer.seeding import derived_seed


def attack(copies: CopySet, data: ImageData, spec: EvidenceSpec, out: str | Path, *,
           seed: int = 0, device: torch.device | str = "cpu",
           progress: bool = True) -> dict[str, Evidence]:
    """Run every attack of ``spec`` from every source copy until ``spec.num`` successful
    examples exist per attack (shared out evenly over the sources); writes ``attack/<name>/``.

    ``spec.colluders`` > 1: consecutive sources form groups of that size, and each group attacks
    together (an example must fool all of its copies; the evidence names the group's first).
    ``spec.adaptive``: every source is an attacker who knows tracer exists (attacks.adaptive).
    ``spec.shards``: each source's images are cut into that many contiguous ranges, each with
    its share of the examples wanted and its own resume file, so that jobs can attack them apart:
    ``spec.shard=j`` attacks range j only and writes no evidence (returns {}); without a shard
    the stage attacks what is left and merges every range into the evidence, the same as if one
    job had done it all."""
    run = Run(out)
    sources = list(range(copies.num_copies)) if spec.sources is None else list(spec.sources)
    groups = collusion_groups(sources, spec.colluders)
    correct = predict_labels(copies.outputs, data.x_test, device=device) == data.y_test[:, None]
    per_group = -(-spec.num // len(groups))
    manifest_sha = sha256_file(run.manifest_path)
    results = {}
    for attack_spec in spec.attacks:
        name = attack_spec.name
        if run.stage_done("attack", name):
            results[name] = run.load_evidence(name)
            continue
        start = time.time()
        parts, tried = [], 0
        for rank, group in enumerate(groups):
            pool = shared_pool(correct, len(groups), rank, derived_seed(seed, "attack_pool"))
            pool = pool[:int(per_group * spec.max_tries_factor)]
            tag = "-".join(map(str, group))
            for j, (images, wanted) in enumerate(shard_ranges(pool, per_group, spec.shards)):
                if spec.shard is not None and j != spec.shard:
                    continue
                part = f"source_{tag}.npz" if spec.shards == 1 else \
                    f"source_{tag}_shard{j}of{spec.shards}.npz"
                ev, n_tried = attack_copy(copies, group[0] if spec.colluders == 1 else group,
                                          attack_spec, data.x_test, data.y_test, images, wanted,
                                          device=device, progress=progress,
                                          seed=derived_seed(seed, f"attack_{tag}_shard{j}"),
                                          part=run.attack_dir(name) / "parts" / part,
                                          adaptive=spec.adaptive, train_images=data.x_train)
                parts.append(ev)
                tried += n_tried
        if spec.shard is not None:
            continue
        evidence = Evidence.concat(parts)
        evidence.params = {k: v for k, v in evidence.params.items() if k != "tried"}
        path = run.evidence_path(name)
        evidence.save(path)
        seconds = round(time.time() - start, 1)
        write_json(run.attack_dir(name) / "attack.json", {
            "attack": evidence.attack, "name": name, "threat": attack_spec.threat,
            "budget": attack_spec.budget, "num_evidence": len(evidence), "num_tried": tried,
            "success_rate": len(evidence) / tried if tried else None,
            "mean_queries": float(evidence.queries.float().mean()) if len(evidence) else None,
            "perturbation": perturbation_norms(evidence.x, data.x_test[evidence.clean_index]),
            "sources": sources, "groups": groups, "adaptive": asdict(spec.adaptive),
            "evidence_sha256": sha256_file(path), "manifest_sha256": manifest_sha,
            "made_against": manifest_summary(run.manifest), "seconds": seconds})
        run.mark("attack", "done", key=name, seconds=seconds)
        results[name] = evidence
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
