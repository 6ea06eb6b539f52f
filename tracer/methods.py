"""The separation methods, in one registry: how each kind of copies is built, how the manifest
records it, how it is rebuilt from there, and how it is traced.

| name | copy i | default scorer |
|---|---|---|
| ``residual`` (ours) | C + alpha * pi_i(T_0), T_0 the residual tracer | ``debiased_disagree`` |
| ``paper`` | the same with T_0 the paper's VAE encoder under L_trap | ``dol`` |
| ``naive`` | C retrained from another seed | ``crossing_margin`` |
| ``watermark`` | C fine-tuned behind its own random input mask | ``mask_change`` |

What the separation stage hands on is a :class:`CopySet`; a new method is one more entry of
:data:`METHODS`, with a builder (from a :class:`~tracer.separation.trainer.Trainer`) and a
loader (from the manifest), nothing else.
"""
from __future__ import annotations

import copy as _copy
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from tracer import distributed
from tracer.baselines import IndependentCopies, InputMask, MaskedCopies, random_masks
from tracer.io import IntegrityError, check_sha256, load_npy, load_weights, save_npy, tensor_sha256
from tracer.models.common_directions import run_common_directions
from tracer.models.copies import random_projections
from tracer.models.factory import InputSpec, ModelSpec, TracerSpec, build_base, build_copies
from tracer.models.residual import ResidualTracer
from tracer.models.vae import VAETracer
from tracer.seeding import derived_seed
from tracer.separation.orthogonal import train_orthogonal_classifiers
from tracer.separation.permutations import make_permutations
from tracer.separation.spec import SeparationSpec
from tracer.separation.train import train_classifier, train_residual_tracer, train_vae_tracer
from tracer.separation.trainer import Trainer
from tracer.tracing import Scored


class CopySet(Protocol):
    """The copies a seller ships, as every later stage uses them (an ``nn.Module``).

    ``scorers``: the rules ``trace`` scores with, the first the default; ``needs_clean_images``:
    whether ``trace`` needs each example's clean image beside it.
    """
    scorers: tuple[str, ...]
    needs_clean_images: bool

    @property
    def num_copies(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    def outputs(self, x: Tensor) -> Tensor:
        """Every copy's output: [n, m, K]."""

    def copy(self, index: int) -> nn.Module:
        """Buyer ``index``'s model, an ordinary module an attacker can be handed."""

    def sold(self, index: int) -> nn.Module:
        """The same model holding buyer ``index``'s key and no other's (``tracer export``)."""

    def trace(self, x: Tensor, *, clean_images: Tensor | None = None,
              clean_labels: Tensor | None = None, device: torch.device | str = "cpu") -> Scored:
        """Every candidate's label and every scorer's scores on evidence images ``x``."""


class Stored:
    """A finished separation stage's files, read through its manifest: every file's sha256 is
    checked before it is used, checkpoints load weights-only."""

    def __init__(self, manifest: dict, directory: Path, where: Path):
        self.manifest, self.directory, self.where = manifest, directory, where

    def field(self, read: Callable[[dict], object]):
        """``read(manifest)``, a malformed manifest refused."""
        try:
            return read(self.manifest)
        except (TypeError, ValueError, KeyError) as err:
            raise IntegrityError(f"{self.where}: malformed manifest ({err!r})") from None

    @property
    def num_copies(self) -> int:
        return self.field(lambda m: len(m["accuracy"]["copy_clean_acc"]))

    def specs(self) -> tuple[InputSpec, ModelSpec]:
        return self.field(lambda m: (InputSpec(**m["input"]), ModelSpec(**m["model"])))

    def weights_into(self, module: nn.Module, name: str) -> nn.Module:
        """``module`` with the weights of ``name``, which must fit it."""
        files = self.field(lambda m: m["files"])
        if name not in files:
            raise IntegrityError(f"{self.where}: lists no sha256 for {name}")
        path = self.directory / name
        state = load_weights(path, files[name])
        try:
            module.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise IntegrityError(f"{path}: does not fit the architecture in the manifest "
                                 f"({str(err).splitlines()[0][:200]})") from None
        return module

    def array(self, name: str) -> np.ndarray:
        path = self.directory / name
        check_sha256(path, self.field(lambda m: m["files"]).get(name))
        return load_npy(path)


@dataclass(frozen=True)
class Method:
    """One way to make copies: ``build(trainer) -> (copies, what the manifest adds)`` and
    ``load(stored) -> copies``. ``statistic``: what tracing's per-candidate statistic is."""
    name: str
    build: Callable[[Trainer], tuple[CopySet, dict]]
    load: Callable[[Stored], CopySet]
    needs_clean_images: bool = False
    statistic: str = "DOL"


# ---------------------------------------------------------------- the tracer: C + alpha * T_i

TRAINED_TRACER_FIELDS = ("width", "depth")   # of TracerSpec; gain, reads, output norm act after


def _residual_tracer(spec: TracerSpec, inp: InputSpec, seed: int) -> ResidualTracer:
    c, h, _ = inp.shape
    return ResidualTracer(inp.num_classes, c, h, width=spec.width, depth=spec.depth,
                          gain=spec.gain, seed=seed, reads=spec.reads)


def _vae_tracer(spec: TracerSpec, inp: InputSpec, seed: int) -> VAETracer:
    c, h, _ = inp.shape
    return VAETracer(inp.num_classes, c, h, inp.mean, inp.std, width=spec.width)


def _tracer_method(name: str, make_tracer, train_tracer) -> Method:
    """C + alpha * T_i with T_0 made by ``make_tracer`` and trained by ``train_tracer``."""

    def build(t: Trainer) -> tuple[CopySet, dict]:
        spec, d = t.spec, t.data
        t.base = t.base_classifier()
        seed = derived_seed(t.seed, "tracer_training")
        torch.manual_seed(seed)
        key = {"role": "tracer", "method": name,
               "tracer": {k: asdict(spec.tracer)[k] for k in TRAINED_TRACER_FIELDS},
               "training": asdict(spec.tracer_training), "seed": seed}
        trained = t.trained("tracer_base.pt", make_tracer(spec.tracer, t.inp, t.seed), key,
                            lambda m, ckpt: train_tracer(m, d.x_train, spec.tracer_training,
                                                         seed=seed, device=t.device,
                                                         checkpoint=ckpt, progress=t.progress))
        extra = {"tracer": asdict(spec.tracer), "alpha": spec.alpha, "keying": spec.keying,
                 "classifiers": spec.classifiers}
        unsold = common = None
        if spec.keying == "projection":
            keys = random_projections(spec.num_copies, d.num_classes, int(np.prod(d.shape)),
                                      seed=t.seed)
            extra.update(projection_seed=t.seed, projections_sha256=tensor_sha256(keys))
            num_unsold = spec.unsold_keys if spec.classifiers == "shared" else 0
            unsold = _unsold_keys(num_unsold, keys.shape, t.seed)
            extra["unsold_keys"] = num_unsold
            common = _made_common_directions(t, trained.base_tracer)
            extra["common_directions"] = 0 if common is None else common.shape[1]
        else:
            keys = make_permutations(d.num_classes, spec.num_copies, seed=t.seed,
                                     max_agreement=spec.max_agreement)
            extra["permutations"] = keys
        classifiers = None
        if spec.classifiers == "orthogonal":
            classifiers = _orthogonal_classifiers(t)
            extra["orthogonal_weight"] = spec.orthogonal_weight
        return build_copies(t.base, trained.base_tracer, keys, spec.alpha, spec.tracer,
                            classifiers, unsold, common), extra

    def load(s: Stored) -> CopySet:
        inp, model = s.specs()
        tracer_spec = s.field(lambda m: TracerSpec(**m["tracer"]))
        base = s.weights_into(build_base(model, inp), "base.pt")
        trained = s.weights_into(make_tracer(tracer_spec, inp, 0), "tracer_base.pt")
        classifiers = None
        if s.manifest.get("classifiers") == "orthogonal":
            classifiers = s.weights_into(nn.ModuleList(
                [build_base(model, inp) for _ in range(s.num_copies)]), "classifiers.pt")
        keys = _keys(s, inp)
        unsold = common = None
        if keys.ndim == 3:
            if classifiers is None:
                unsold = _unsold_keys(s.field(_num_unsold), keys.shape,
                                      s.field(lambda m: int(m["projection_seed"])))
            common = _stored_common_directions(s, keys.shape[2])
        return build_copies(base, trained.base_tracer, keys, s.field(lambda m: m["alpha"]),
                            tracer_spec, classifiers, unsold, common)

    return Method(name, build, load)


COMMON_DIRECTIONS_FILE = "common_directions.npy"


def _made_common_directions(t: Trainer, tracer: nn.Module) -> Tensor | None:
    """The directions tracing removes (tracer.models.common_directions), kept in ``separate/``;
    None where the spec asks for none."""
    found = run_common_directions(tracer.to(t.device), t.data.x_train, t.spec.common_share,
                                  t.seed)
    if found is None:
        return None
    if distributed.is_main():
        save_npy(t.where / COMMON_DIRECTIONS_FILE, found.numpy())
    t.files.append(COMMON_DIRECTIONS_FILE)
    return found


def _stored_common_directions(s: Stored, size: int) -> Tensor | None:
    """The run's common directions [size, k], sha256-checked; None where it has none (made
    with separation.common_share=0, or before they existed)."""
    num = s.field(lambda m: int(m.get("common_directions", 0)))
    if not num:
        return None
    if COMMON_DIRECTIONS_FILE not in s.field(lambda m: m["files"]):
        raise IntegrityError(f"{s.where}: lists no sha256 for {COMMON_DIRECTIONS_FILE}")
    arr = s.array(COMMON_DIRECTIONS_FILE)
    if arr.dtype != np.float32 or arr.shape != (size, num):
        raise IntegrityError(f"{s.where}: {COMMON_DIRECTIONS_FILE} must be float32 "
                             f"[{size}, {num}], got {arr.dtype} {list(arr.shape)}")
    return torch.from_numpy(arr)


def _num_unsold(manifest: dict) -> int:
    # a run made before the key test says nothing: it gets the default's unsold keys
    num = int(manifest.get("unsold_keys", SeparationSpec.unsold_keys))
    if num < 0:
        raise ValueError(f"unsold_keys {num} < 0")
    return num


def _unsold_keys(num: int, sold_shape: torch.Size, seed: int) -> Tensor | None:
    """The key test's ``num`` unsold projection keys, drawn as the sold ones are (None for 0)."""
    _, k, d = sold_shape
    return random_projections(num, k, d, seed=seed, purpose="unsold_key") if num else None


def _keys(s: Stored, inp: InputSpec) -> Tensor:
    """The copies' secret keys: the permutations the manifest lists, or the projections rebuilt
    from its seed and checked against its sha256."""
    keying = s.manifest.get("keying", "permutation")
    if keying == "permutation":
        return s.field(lambda m: torch.tensor(m["permutations"], dtype=torch.long))
    if keying != "projection":
        raise IntegrityError(f"{s.where}: unknown keying {keying!r}")
    keys = s.field(lambda m: random_projections(s.num_copies, inp.num_classes,
                                                int(np.prod(inp.shape)),
                                                seed=int(m["projection_seed"])))
    if tensor_sha256(keys) != s.manifest.get("projections_sha256"):
        raise IntegrityError(f"{s.where}: the projections rebuilt from its seed do not match its "
                             "projections_sha256 (edited manifest, or another torch)")
    return keys


def _orthogonal_classifiers(t: Trainer) -> nn.ModuleList:
    """Every copy's own C_i: C fine-tuned with the gradient-orthogonal loss (the paper's
    counter-measure to collusion)."""
    spec, d = t.spec, t.data
    start = nn.ModuleList([_copy.deepcopy(t.base) for _ in range(spec.num_copies)])
    seed = derived_seed(t.seed, "orthogonal_classifiers")
    key = {"role": "orthogonal", "model": asdict(spec.model), "base": asdict(spec.classifier),
           "training": asdict(spec.finetune), "weight": spec.orthogonal_weight,
           "copies": spec.num_copies, "seed": seed}
    return t.trained("classifiers.pt", start, key, lambda m, ckpt: train_orthogonal_classifiers(
        m, d.x_train, d.y_train, spec.finetune, spec.orthogonal_weight, seed=seed,
        device=t.device, checkpoint=ckpt, progress=t.progress))


# ---------------------------------------------------------------- the baselines

def naive_copy_seed(seed: int, index: int) -> int:
    """Naive copy ``index``'s training seed: copy 0 is trained exactly as the tracer's C, so
    the two share it (and the train cache)."""
    return seed if index == 0 else derived_seed(seed, f"naive_copy_{index}")


def _build_naive(t: Trainer) -> tuple[CopySet, dict]:
    members = [t.base_classifier("copy_0.pt")] + [
        t.classifier(f"copy_{i}.pt", naive_copy_seed(t.seed, i))
        for i in range(1, t.spec.num_copies)]
    return IndependentCopies(members, t.data.num_classes), {}


def _load_members(s: Stored) -> list[nn.Module]:
    inp, model = s.specs()
    return [s.weights_into(build_base(model, inp), f"copy_{i}.pt") for i in range(s.num_copies)]


def _load_naive(s: Stored) -> CopySet:
    return IndependentCopies(_load_members(s), s.specs()[0].num_classes)


def _build_watermark(t: Trainer) -> tuple[CopySet, dict]:
    spec, d = t.spec, t.data
    t.base = t.base_classifier()
    keep = random_masks(spec.num_copies, tuple(d.shape), spec.masked_fraction, seed=t.seed)
    if distributed.is_main():
        save_npy(t.where / "masks.npy", keep.numpy().astype(np.float32))
    t.files.append("masks.npy")
    members = []
    for i in range(spec.num_copies):
        member = build_base(spec.model, t.inp)
        member.load_state_dict(t.base.state_dict())
        seed = derived_seed(t.seed, f"watermark_copy_{i}")
        key = {"role": "masked", "model": asdict(spec.model), "base": asdict(spec.classifier),
               "training": asdict(spec.finetune), "seed": seed,
               "keep_sha256": hashlib.sha256(keep[i].numpy().tobytes()).hexdigest()}
        members.append(t.trained(f"copy_{i}.pt", member, key,
                                 lambda m, ckpt, i=i, seed=seed: train_classifier(
                                     InputMask(m, keep[i]), d.x_train, d.y_train, spec.finetune,
                                     seed=seed, device=t.device, checkpoint=ckpt,
                                     progress=t.progress)))
    return MaskedCopies(members, keep, d.num_classes), {"masked_fraction": spec.masked_fraction}


def _load_watermark(s: Stored) -> CopySet:
    members = _load_members(s)
    inp, _ = s.specs()
    keep = s.array("masks.npy")
    want = (len(members), *inp.shape)
    if keep.shape != want or keep.dtype != np.float32 or not np.isin(keep, (0.0, 1.0)).all():
        raise IntegrityError(f"{s.directory / 'masks.npy'}: expected {want} float32 masks of "
                             f"0/1, got {keep.shape} {keep.dtype}")
    return MaskedCopies(members, torch.from_numpy(keep), inp.num_classes)


METHODS: dict[str, Method] = {
    "residual": _tracer_method("residual", _residual_tracer, train_residual_tracer),
    "paper": _tracer_method("paper", _vae_tracer, train_vae_tracer),
    "naive": Method("naive", _build_naive, _load_naive, statistic="baseline score"),
    "watermark": Method("watermark", _build_watermark, _load_watermark,
                        needs_clean_images=True, statistic="baseline score"),
}


def method(name: str) -> Method:
    """The registered method ``name``; a clear error for any other."""
    if name not in METHODS:
        raise ValueError(f"unknown separation method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name]


__all__ = ["CopySet", "METHODS", "Method", "Stored", "method"]
