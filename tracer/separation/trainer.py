"""Train a network of the separation stage, or take it from where it was trained before.

A :class:`Trainer` looks for each network in its run directory (an interrupted stage), then in
the train cache (a sweep trains each network once), and trains it only when neither has it; C
itself is adopted from the vendor's checkpoint when the config names one.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch

from tracer import distributed
from tracer.data import ImageData
from tracer.io import atomic_torch_save, atomic_write_bytes, atomic_write_text, load_weights
from tracer.models.adopt import adopt_classifier, checkpoint_record
from tracer.models.factory import InputSpec, build_base
from tracer.separation.spec import SeparationSpec
from tracer.separation.train import train_classifier


def input_spec(data: ImageData) -> InputSpec:
    """What the data set fixes for every network trained on it."""
    mean, std = data.channel_stats()
    return InputSpec(list(data.shape), data.num_classes, mean, std)


@dataclass
class Trainer:
    """Trains (or loads, from ``where`` or the cache) the networks of one separation stage;
    ``files`` lists what it put in ``where``, ``base`` the classifier C once made."""
    where: Path
    data: ImageData
    spec: SeparationSpec
    seed: int
    device: torch.device | str
    progress: bool
    files: list[str] = field(default_factory=list)
    base: torch.nn.Module | None = None
    adopted: dict | None = None   # the checkpoint C was adopted from: file and sha256

    def base_classifier(self, name: str = "base.pt") -> torch.nn.Module:
        """The classifier C: adopted from ``spec.model.checkpoint`` when the config names one
        (nothing is trained), else trained with the run's seed."""
        checkpoint = self.spec.model.checkpoint
        if checkpoint is None:
            return self.classifier(name, self.seed)
        self.adopted = checkpoint_record(checkpoint)
        path = self.where / name
        if path.is_file():   # an interrupted stage adopted it already
            module = build_base(self.spec.model, self.inp)
            module.load_state_dict(load_weights(path))
        else:
            module = adopt_classifier(checkpoint, self.spec.model, self.inp)
            if distributed.is_main():
                atomic_torch_save(module.state_dict(), path)
        self.files.append(name)
        return module.eval()

    @cached_property
    def inp(self) -> InputSpec:
        return input_spec(self.data)

    @cached_property
    def data_sha256(self) -> str:
        """The training images and labels, hashed once for every cache key of this stage."""
        h = hashlib.sha256()
        for t in (self.data.x_train, self.data.y_train):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()

    def classifier(self, name: str, seed: int) -> torch.nn.Module:
        """A classifier C as ``spec`` trains it, initialised and shuffled with ``seed``."""
        d, spec = self.data, self.spec
        torch.manual_seed(seed)
        key = {"role": "classifier", "model": asdict(spec.model),
               "training": asdict(spec.classifier), "seed": seed}
        return self.trained(name, build_base(spec.model, self.inp), key, lambda m, ckpt:
                            train_classifier(m, d.x_train, d.y_train, spec.classifier, seed=seed,
                                             device=self.device, checkpoint=ckpt,
                                             progress=self.progress))

    def trained(self, name: str, module: torch.nn.Module, key: dict,
                train: Callable[[torch.nn.Module, Path], list[dict]]) -> torch.nn.Module:
        """``module`` loaded from ``where/<name>`` if an earlier (interrupted) run finished it,
        else from the train cache, else trained by ``train(module, checkpoint)``."""
        path, history = self.where / name, self.where / f"history_{Path(name).stem}.csv"
        cache = None if self.spec.train_cache is None else cache_path(
            self.spec.train_cache, {"data": self.data.name, "data_sha256": self.data_sha256,
                                    "input": asdict(self.inp), **key}, name)
        main = distributed.is_main()
        # under torchrun, every process must see the same files when it decides to train
        distributed.barrier()
        if cache is not None and cache.is_file():
            module.load_state_dict(load_weights(cache if not path.is_file() else path))
            if main and not path.is_file():
                atomic_write_bytes(path, cache.read_bytes())
        elif path.is_file():
            module.load_state_dict(load_weights(path))
        else:
            rows = train(module, self.where / "resume" / name)
            if main:
                _write_history(history, rows)
                atomic_torch_save(module.state_dict(), path)
                if cache is not None:
                    atomic_write_bytes(cache, path.read_bytes())
        self.files.append(name)
        return module.eval()


def cache_path(cache_dir: str, key: dict, name: str) -> Path:
    """Where the train cache keeps the network ``key`` describes (its data, architecture,
    training and seed); the file name hashes the key and torch's version."""
    h = hashlib.sha256(json.dumps({"torch": torch.__version__, **key}, sort_keys=True).encode())
    return Path(cache_dir) / f"{Path(name).stem.rstrip('_0123456789')}-{h.hexdigest()[:32]}.pt"


def _write_history(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
