"""Data sets as in-memory tensors in [0, 1], read through torchvision's real on-disk readers.

One loader per data set, all returning :class:`ImageData` with fixed, seeded subsets.
Normalisation is not applied here: it lives inside the models (``models.Normalize``).
Nothing is downloaded unless ``download=True`` and no local copy was found.
"""
from __future__ import annotations

import gzip
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataError(RuntimeError):
    """A data set could not be found or read; the message says where tracer looked."""


@dataclass
class ImageData:
    """A classification data set held in memory.

    Shape:
        x_train, x_test: [N, C, H, W] float32 in [0, 1]; y_train, y_test: [N] int64.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    classes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images (for ``models.Normalize``)."""
        mean = self.x_train.mean(dim=(0, 2, 3))
        std = self.x_train.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return mean.tolist(), std.tolist()


def default_cache_dir() -> Path:
    return Path(os.environ.get("TRACER_CACHE_DIR", Path.home() / ".cache" / "tracer"))


def load_dataset(name: str, root: str | Path | None = None, *, n_train: int | None = None,
                 n_test: int | None = None, seed: int = 0, image_size: int | None = None,
                 download: bool = False, cache_dir: str | Path | None = None) -> ImageData:
    """Load data set ``name`` and keep a seeded random subset of ``n_train``/``n_test`` images.

    ``root`` is the data set's torchvision root (``$TRACER_DATA_DIR`` in the configs); when it is
    None, each loader looks in its usual places (see its docstring).
    """
    if name not in LOADERS:
        raise DataError(f"unknown data set {name!r}; known: {sorted(LOADERS)}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    data = LOADERS[name](Path(root) if root else None, cache, image_size, download)
    gen = torch.Generator().manual_seed(seed)
    data.x_train, data.y_train = _subset(data.x_train, data.y_train, n_train, gen)
    data.x_test, data.y_test = _subset(data.x_test, data.y_test, n_test, gen)
    return data


def _subset(x: Tensor, y: Tensor, n: int | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=gen)[:n].sort().values
    return x[idx].contiguous(), y[idx].contiguous()


def _to_float(images: np.ndarray | Tensor) -> Tensor:
    """uint8 [N, H, W] or [N, H, W, C] -> float32 [N, C, H, W] in [0, 1]."""
    t = torch.as_tensor(np.asarray(images))
    if t.ndim == 3:
        t = t.unsqueeze(-1)
    return t.permute(0, 3, 1, 2).contiguous().float().div_(255.0)


# ---------------------------------------------------------------- MNIST family (IDX files)

def _fashion_mnist(root: Path | None, cache: Path, image_size: int | None, download: bool) -> ImageData:
    """Fashion-MNIST: ``root`` (a torchvision root holding ``FashionMNIST/raw``), else Debian's
    ``dataset-fashion-mnist`` package (gzipped IDX files, unpacked once into the cache), else
    torchvision's download into the cache when ``download`` is set."""
    from torchvision.datasets import FashionMNIST
    return _idx_dataset(FashionMNIST, "fashion_mnist", root, cache, download, DEBIAN_FASHION_MNIST)


def _mnist(root: Path | None, cache: Path, image_size: int | None, download: bool) -> ImageData:
    """MNIST from a torchvision root holding ``MNIST/raw`` (or the cache, or a download)."""
    from torchvision.datasets import MNIST
    return _idx_dataset(MNIST, "mnist", root, cache, download, None)


def _idx_dataset(cls, name: str, root: Path | None, cache: Path, download: bool,
                 debian_dir: Path | None) -> ImageData:
    if root is None:
        root = cache
        if debian_dir is not None and not _has_raw(cls, cache) and debian_dir.is_dir():
            unpack_idx_gz(debian_dir, cache / cls.__name__ / "raw")
    if not _has_raw(cls, root) and not download:
        where = f"{root / cls.__name__ / 'raw'}" + (f" or {debian_dir}" if debian_dir else "")
        raise DataError(f"{name}: no IDX files in {where}. Install Debian's dataset-fashion-mnist, "
                        "set TRACER_DATA_DIR to a torchvision root, or pass dataset.download=true.")
    train = cls(str(root), train=True, download=download)
    test = cls(str(root), train=False, download=download)
    return ImageData(name, _to_float(train.data), train.targets.long(), _to_float(test.data),
                     test.targets.long(), len(train.classes), list(train.classes))


def _has_raw(cls, root: Path) -> bool:
    return all((root / cls.__name__ / "raw" / f).is_file() for f in _IDX_FILES)


def unpack_idx_gz(src: Path, dst: Path) -> None:
    """Unpack ``src/<idx>.gz`` into ``dst/<idx>`` (torchvision's raw layout), each file atomically."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in _IDX_FILES:
        if (dst / f).is_file():
            continue
        gz = src / f"{f}.gz"
        if not gz.is_file():
            raise DataError(f"missing {gz}")
        fd, tmp = tempfile.mkstemp(dir=dst, prefix=f".{f}.")
        with os.fdopen(fd, "wb") as out, gzip.open(gz, "rb") as inp:
            shutil.copyfileobj(inp, out)
        os.replace(tmp, dst / f)


# ---------------------------------------------------------------- scikit-learn's digits

def _digits(root: Path | None, cache: Path, image_size: int | None, download: bool) -> ImageData:
    """scikit-learn's 8x8 digits (1797 images, shipped inside scikit-learn); a fixed 80/20 split."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.as_tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1797))
    n_test = len(x) // 5
    te, tr = perm[:n_test].sort().values, perm[n_test:].sort().values
    return ImageData("digits", x[tr], y[tr], x[te], y[te], 10, [str(i) for i in range(10)])


# ---------------------------------------------------------------- colour data sets

def _cifar10(root: Path | None, cache: Path, image_size: int | None, download: bool) -> ImageData:
    """CIFAR-10 in its python-batches layout (``cifar-10-batches-py``). torchvision checks every
    batch file's md5 against the official release before it reads it."""
    from torchvision.datasets import CIFAR10
    root = _require_root("cifar10", root, cache, download)
    train = CIFAR10(str(root), train=True, download=download)
    test = CIFAR10(str(root), train=False, download=download)
    return ImageData("cifar10", _to_float(train.data), torch.as_tensor(train.targets),
                     _to_float(test.data), torch.as_tensor(test.targets), 10, list(train.classes))


def _gtsrb(root: Path | None, cache: Path, image_size: int | None, download: bool) -> ImageData:
    """GTSRB in torchvision's layout (``gtsrb/GTSRB/Training/<class>/*.ppm``, ``Final_Test``),
    resized to ``image_size`` (default 32)."""
    from torchvision.datasets import GTSRB
    root = _require_root("gtsrb", root, cache, download)
    size = image_size or 32
    train = GTSRB(str(root), split="train", download=download)
    test = GTSRB(str(root), split="test", download=download)
    xtr, ytr = _read_images(train._samples, size)
    xte, yte = _read_images(test._samples, size)
    return ImageData("gtsrb", xtr, ytr, xte, yte, 43, [f"{i:05d}" for i in range(43)])


def _tiny_imagenet(root: Path | None, cache: Path, image_size: int | None,
                   download: bool) -> ImageData:
    """Tiny-ImageNet-200 in its release layout: ``tiny-imagenet-200/train/<wnid>/images/*.JPEG``
    (read with torchvision's ImageFolder) and ``val/images`` + ``val/val_annotations.txt``."""
    from torchvision.datasets import ImageFolder
    base = _require_root("tiny_imagenet", root, cache, False) / "tiny-imagenet-200"
    train = ImageFolder(str(base / "train"))
    val_dir = base / "val"
    samples = []
    with open(val_dir / "val_annotations.txt") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 2:
                samples.append((str(val_dir / "images" / fields[0]), train.class_to_idx[fields[1]]))
    size = image_size or 64
    xtr, ytr = _read_images(train.samples, size)
    xte, yte = _read_images(samples, size)
    return ImageData("tiny_imagenet", xtr, ytr, xte, yte, len(train.classes), train.classes)


def _mini_imagenet(root: Path | None, cache: Path, image_size: int | None,
                   download: bool) -> ImageData:
    """mini-ImageNet for classification (100 classes) as two torchvision ImageFolders:
    ``mini-imagenet/train/<class>/*.jpg`` and ``mini-imagenet/val/<class>/*.jpg``."""
    from torchvision.datasets import ImageFolder
    base = _require_root("mini_imagenet", root, cache, False) / "mini-imagenet"
    train, test = ImageFolder(str(base / "train")), ImageFolder(str(base / "val"))
    if train.classes != test.classes:
        raise DataError(f"mini_imagenet: train and val class folders differ under {base}")
    size = image_size or 84
    xtr, ytr = _read_images(train.samples, size)
    xte, yte = _read_images(test.samples, size)
    return ImageData("mini_imagenet", xtr, ytr, xte, yte, len(train.classes), train.classes)


def _image_folder(root: Path | None, cache: Path, image_size: int | None,
                  download: bool) -> ImageData:
    """The vendor's own images in torchvision's ImageFolder layout: ``root/train/<class>/*`` and
    ``root/test/<class>/*``, any size and format PIL reads, as RGB resized to ``image_size``
    (default 32). ``root`` is required: there is no default place for one's own data."""
    from torchvision.datasets import ImageFolder
    if root is None:
        raise DataError("image_folder: set dataset.root to the folder holding train/ and test/")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"image_folder: {root / split} does not exist (expected "
                            f"{root}/train/<class>/* and {root}/test/<class>/*)")
    try:
        train, test = ImageFolder(str(root / "train")), ImageFolder(str(root / "test"))
    except (FileNotFoundError, RuntimeError) as err:   # a class folder without images
        raise DataError(f"image_folder: {err}") from None
    if train.classes != test.classes:
        raise DataError(f"image_folder: the class folders of {root / 'train'} "
                        f"({train.classes}) and {root / 'test'} ({test.classes}) differ")
    size = image_size or 32
    xtr, ytr = _read_images(train.samples, size)
    xte, yte = _read_images(test.samples, size)
    return ImageData("image_folder", xtr, ytr, xte, yte, len(train.classes), train.classes)


def _require_root(name: str, root: Path | None, cache: Path, download: bool) -> Path:
    root = root or cache
    if not root.is_dir() and not download:
        raise DataError(f"{name}: data root {root} does not exist; set TRACER_DATA_DIR "
                        f"(dataset.root) to the folder that holds it")
    return root


def _read_images(samples: list[tuple[str, int]], size: int) -> tuple[Tensor, Tensor]:
    """Decode (path, label) pairs with PIL, resized to size x size RGB."""
    from PIL import Image
    if not samples:
        raise DataError("no images found")
    xs = np.empty((len(samples), size, size, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(samples):
        with Image.open(path) as im:
            xs[i] = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
    return _to_float(xs), torch.as_tensor([label for _, label in samples], dtype=torch.long)


LOADERS: dict[str, Callable[..., ImageData]] = {
    "fashion_mnist": _fashion_mnist,
    "mnist": _mnist,
    "digits": _digits,
    "cifar10": _cifar10,
    "gtsrb": _gtsrb,
    "tiny_imagenet": _tiny_imagenet,
    "mini_imagenet": _mini_imagenet,
    "image_folder": _image_folder,
}


def batches(n: int, batch_size: int, generator: torch.Generator | None = None):
    """Index batches over ``range(n)``: shuffled when a generator is given, in order otherwise."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def main(argv: list[str] | None = None) -> int:
    """``python -m tracer.data NAME``: make sure NAME is readable offline and summarise it."""
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0] if argv else "fashion_mnist"
    root = os.environ.get("TRACER_DATA_DIR")
    try:
        d = load_dataset(name, root)
    except DataError as err:
        print(f"tracer.data: {err}", file=sys.stderr)
        return 1
    print(f"{name}: {len(d.x_train)} train, {len(d.x_test)} test, shape {d.shape}, "
          f"{d.num_classes} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
