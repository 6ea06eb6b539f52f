"""The calibrate stage: trace inputs no copy is the source of, choose the score below which
tracer abstains, and measure false accusations and detection there; writes ``innocent/``."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from tracer.abstention import (choose_threshold, detection_rate, false_accusation_rate, halves,
                               operating_curve, rate_upper_bound, wrong_accusation_rate)
from tracer.attacks.generate import attack_copy, shared_pool
from tracer.baselines import IndependentCopies
from tracer.data import ImageData
from tracer.evaluation.aggregate import (GROUP_SIZES, group_false_accusations, group_rates,
                                         innocent_groups)
from tracer.evidence import Evidence
from tracer.innocent import INDEPENDENT, InnocentSpec, innocent_evidence, innocent_image_order
from tracer.io import read_json, sha256_file, write_json
from tracer.methods import CopySet
from tracer.models.predict import predict_labels
from tracer.runs import Run
from tracer.seeding import derived_seed
from tracer.separation.spec import SeparationSpec
from tracer.separation.trainer import Trainer
from tracer.stages.separating import trained_as_recorded
from tracer.stages.tracing import scorer_name, traced_evidence
from tracer.tracing import Scores
from tracer.transforms import gaussian_noise, jpeg

log = logging.getLogger("tracer")


def calibrate(copies: CopySet, data: ImageData, spec: InnocentSpec, out: str | Path, *,
              separation: SeparationSpec, scorer: str = "auto", seed: int = 0,
              device: torch.device | str = "cpu", progress: bool = True) -> dict:
    """Trace the innocent sets, choose the abstention threshold on their calibration halves,
    and measure false accusations (held-out halves) and detection (every attack's evidence,
    traced with the same scorer) at it, per example; and for groups of ``GROUP_SIZES`` examples
    from one buyer tested together (``Scores.groups``), at a threshold of their own; writes
    ``innocent/`` and returns
    ``innocent/calibration.json``'s content. A finished calibration is kept unless the scorer,
    the manifest (the copies and how tracing reads them), the threshold's settings or the run's
    attacks differ (the innocent sets are kept either way). ``separation``
    says how the independent set's classifier is trained (as C is: its architecture and training
    as the run's separate stage recorded them, where it did); ``scorer`` is the trace stage's."""
    run = Run(out)
    separation = trained_as_recorded(run, separation)
    use = scorer_name(copies, scorer)
    unsold = getattr(copies, "num_unsold", 0)
    manifest = sha256_file(run.manifest_path)   # the copies and how tracing reads them
    evidence = {name: ev for name in run.attacks() if len(ev := run.load_evidence(name))}
    if run.stage_done("calibrate"):
        done = read_json(run.calibration_path)
        made_with = (done.get("scorer"), done.get("max_false_accusation"), done.get("confidence"),
                     done.get("unsold_keys"), done.get("manifest_sha256"),
                     {k: v.get("num") for k, v in done.get("innocent", {}).items()},
                     sorted(done.get("attacks", {})), done.get("group_sizes"))
        # an attack added to the run since needs its detection at the threshold too, and a
        # calibration made before groups of examples were tested together their rates
        if made_with == (use, spec.max_false_accusation, spec.confidence, unsold, manifest,
                         {k: spec.size(k) for k in spec.names()}, sorted(evidence),
                         list(GROUP_SIZES)):
            return done
    innocent = {name: traced_evidence(copies, _innocent_set(run, data, name, spec, separation,
                                                            seed, device, progress),
                                      data.x_test, device=device).scores[use]
                for name in spec.names()}
    split = {name: halves(len(s), derived_seed(seed, "innocent_halves"))
             for name, s in innocent.items()}
    calibration_halves = {k: s.select(split[k][0]) for k, s in innocent.items()}
    threshold = choose_threshold(calibration_halves, spec.max_false_accusation, spec.confidence)
    group_thresholds = _group_thresholds(calibration_halves, spec.max_false_accusation, seed)
    attacks = {name: (traced_evidence(copies, ev, data.x_test, device=device).scores[use],
                      ev.source) for name, ev in evidence.items()}
    bound = _key_test_bound(copies.num_copies, unsold)
    if (weak := key_test_too_weak(copies.num_copies, unsold, spec.max_false_accusation)):
        log.warning(weak)
    result = {
        # null: no score bound is needed; a verdict still needs a nameable top (tracer.tracing)
        "scorer": use, "threshold": threshold if math.isfinite(threshold) else None,
        "max_false_accusation": spec.max_false_accusation, "confidence": spec.confidence,
        "unsold_keys": unsold, "key_test_wrong_bound": bound,
        "manifest_sha256": manifest,
        "innocent": {k: _innocent_rates(s, *split[k], threshold, group_thresholds,
                                        spec.confidence)
                     for k, s in innocent.items()},
        "group_sizes": list(GROUP_SIZES),
        "group_thresholds": {str(k): t if math.isfinite(t) else None
                             for k, t in group_thresholds.items()},
        "attacks": {k: {"detection_rate": detection_rate(s, src, threshold),
                        "wrong_accusation_rate": wrong_accusation_rate(s, src, threshold),
                        "by_group_size": group_rates(s, src, group_thresholds)}
                    for k, (s, src) in attacks.items()},
        "curve": operating_curve({k: s.select(split[k][1]) for k, s in innocent.items()}, attacks,
                                 _curve_thresholds(innocent, attacks))}
    write_json(run.calibration_path, result)
    run.mark("calibrate", "done")
    return result


def _group_thresholds(calibration: dict[str, Scores], max_false_accusation: float,
                      seed: int) -> dict[int, float]:
    """Per group size k, the threshold for k examples tested together, chosen as the
    per-example one is, on groups of k drawn from each innocent set's calibration half. A mean
    of k scores rarely reaches the per-example threshold, while a key that reads a kind of
    input a little high by chance passes the group key test more often than one example's
    (docs/method.md section 12). The groups overlap, so no confidence bound is asked of their
    rate: the held-out halves measure it."""
    out = {}
    for k in GROUP_SIZES:
        groups = {name: g for name, s in calibration.items()
                  if (g := innocent_groups(s, k, derived_seed(seed, f"innocent_groups_{k}")))
                  is not None}
        out[k] = choose_threshold(groups, max_false_accusation) if groups else -math.inf
    return out


def key_test_too_weak(copies: int, unsold: int, max_false_accusation: float) -> str | None:
    """What to say where the key test cannot keep naming a wrong copy within
    ``max_false_accusation`` by itself (its bound grows with the copies), else None: the
    threshold then stands alone between attack evidence and a wrong buyer."""
    bound = _key_test_bound(copies, unsold)
    if bound is None or bound <= max_false_accusation:
        return None
    needed = math.ceil((copies - 1) / max_false_accusation) - 1
    return (f"the key test bounds naming a wrong copy at {bound:.3f} per example ({copies} "
            f"copies, {unsold} unsold keys), above the target {max_false_accusation}: "
            f"separation.unsold_keys={needed} or more would keep it within")


def _key_test_bound(copies: int, unsold: int) -> float | None:
    """The key test's bound on naming a wrong copy, per example, over the draw of the keys:
    each of the copies - 1 that are not the source beats all unsold keys with chance
    1 / (unsold + 1). None without a key test."""
    return min(1.0, (copies - 1) / (unsold + 1)) if unsold else None


def _innocent_rates(scores: Scores, calibration: torch.Tensor, held_out: torch.Tensor,
                    threshold: float | None, group_thresholds: dict[int, float],
                    confidence: float | None) -> dict:
    """One innocent set's false accusations at ``threshold``: on its held-out half (with that
    rate's upper bound at ``confidence``, when given), its calibration half, and without
    abstention; and those of groups of its held-out half at ``group_thresholds``."""
    rate = false_accusation_rate(scores.select(held_out), threshold)
    rates = {"num": len(scores), "false_accusation_rate": rate,
             "false_accusation_rate_calibration": false_accusation_rate(
                 scores.select(calibration), threshold),
             "false_accusation_rate_by_group_size": group_false_accusations(
                 scores.select(held_out), group_thresholds),
             "false_accusation_rate_no_abstain": false_accusation_rate(scores, None)}
    if confidence is not None:
        n = len(held_out)
        rates["false_accusation_bound"] = rate_upper_bound(round(rate * n), n, confidence)
    return rates


def _curve_thresholds(innocent: dict, attacks: dict, points: int = 25) -> list[float]:
    tops = torch.cat([s.top()[1] for s in innocent.values()]
                     + [s.top()[1] for s, _ in attacks.values()])
    return torch.quantile(tops, torch.linspace(0, 1, points)).unique().tolist()


def _innocent_set(run: Run, data: ImageData, name: str, spec: InnocentSpec,
                  separation: SeparationSpec, seed: int, device, progress: bool) -> Evidence:
    """Innocent set ``name``, made once and kept in ``innocent/<name>/evidence.npz``; made
    again when ``spec`` asks for another size (an image set is drawn again, the independent set
    resumes its attack or keeps its first examples)."""
    path, wanted = run.innocent_path(name), spec.size(name)
    if path.is_file():
        kept = Evidence.load(path, shape=tuple(data.shape), num_classes=data.num_classes,
                             allow_empty=True)
        if len(kept) == wanted:
            return kept
    independent = name.startswith(INDEPENDENT)
    if not independent and wanted > len(data.x_test):
        raise ValueError(f"innocent.num={wanted} but {data.name} has {len(data.x_test)} test "
                         "images")
    idx = innocent_image_order(len(data.x_test), seed)[:wanted]
    x, y = data.x_test[idx], data.y_test[idx]
    if name == "clean":
        ev = innocent_evidence(x, y, idx, name)
    elif name == "gaussian":
        ev = innocent_evidence(gaussian_noise(x, spec.gaussian_std, seed), y, idx, name)
    elif name == "jpeg":
        ev = innocent_evidence(jpeg(x, spec.jpeg_quality), y, idx, name)
    elif independent:
        ev = _independent_adversarials(run, data, spec, name, separation, seed, device, progress)
    else:
        raise ValueError(f"unknown innocent set {name!r}; known: {spec.names()}")
    ev.save(path)
    return ev


def _independent_adversarials(run: Run, data: ImageData, spec: InnocentSpec, name: str,
                              separation: SeparationSpec, seed: int, device,
                              progress: bool) -> Evidence:
    """Independent set ``name``: its attack's adversarial examples, made on a classifier trained
    apart from every copy (another seed; one classifier and one pool of images for every
    independent set)."""
    attack = spec.attack(name)
    trainer = Trainer(run.innocent_dir, data, separation, seed, device, progress)
    other_seed = derived_seed(seed, "independent_classifier")
    other = IndependentCopies([trainer.classifier("independent.pt", other_seed)],
                              data.num_classes).to(device).eval()
    correct = predict_labels(other.outputs, data.x_test, device=device) == data.y_test[:, None]
    wanted = spec.size(name)
    pool = shared_pool(correct, 1, 0, derived_seed(seed, "independent_pool"))[:3 * wanted]
    ev, _ = attack_copy(other, 0, attack, data.x_test, data.y_test, pool, wanted,
                        device=device, progress=progress,
                        seed=derived_seed(seed, f"independent_attack_{attack.name}"),
                        part=run.innocent_dir / name / "part.npz")
    ev = ev.select(torch.arange(len(ev)) < wanted)  # a resumed larger set: its first examples
    return innocent_evidence(ev.x, ev.y_true, ev.clean_index, name)
