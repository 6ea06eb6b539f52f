"""Every loader, on small files written in each data set's real on-disk format."""
import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from tracer import data as tdata
from tracer.data import DataError, batches, load_dataset


def _idx_images(n, h=28, seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, size=(n, h, h), dtype=np.uint8)
    return imgs, struct.pack(">IIII", 0x0803, n, h, h) + imgs.tobytes()


def _idx_labels(labels):
    labels = np.asarray(labels, dtype=np.uint8)
    return struct.pack(">II", 0x0801, len(labels)) + labels.tobytes()


def _write_idx(folder, n_train=20, n_test=10, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        imgs, blob = _idx_images(n, seed=n)
        files[f"{split}-images-idx3-ubyte"] = blob
        files[f"{split}-labels-idx1-ubyte"] = _idx_labels(np.arange(n) % 10)
    for name, blob in files.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(blob)
        else:
            (folder / name).write_bytes(blob)
    return imgs


def test_fashion_mnist_from_debian_gz_files(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    last_test_imgs = _write_idx(debian, gz=True)
    monkeypatch.setattr(tdata, "DEBIAN_FASHION_MNIST", debian)
    d = load_dataset("fashion_mnist", cache_dir=tmp_path / "cache")
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.num_classes == 10 and d.y_test.tolist() == list(range(10))
    assert torch.allclose(d.x_test[:, 0] * 255, torch.from_numpy(last_test_imgs).float())
    assert (tmp_path / "cache" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
    # a second load reads the unpacked cache, even with the Debian files gone
    for f in debian.iterdir():
        f.unlink()
    assert len(load_dataset("fashion_mnist", cache_dir=tmp_path / "cache").x_train) == 20


def test_mnist_and_fashion_from_a_torchvision_root(tmp_path):
    _write_idx(tmp_path / "FashionMNIST" / "raw")
    _write_idx(tmp_path / "MNIST" / "raw", n_train=12, n_test=6)
    assert len(load_dataset("fashion_mnist", tmp_path).x_train) == 20
    d = load_dataset("mnist", tmp_path, n_train=5, seed=1)
    assert d.x_train.shape == (5, 1, 28, 28) and len(d.x_test) == 6


def test_missing_data_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tdata, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(DataError, match="TRACER_DATA_DIR"):
        load_dataset("fashion_mnist", cache_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", tmp_path / "missing")
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("imagenet22k")


def test_cifar10_python_batches(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        # The release was pickled by Python 2 (str keys); torchvision reads it with latin1.
        with open(base / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                         "labels": [0, 1, 2, 3]}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)

    def md5(name):
        return hashlib.md5((base / name).read_bytes()).hexdigest()
    # torchvision checks every file's md5 against the official release; point it at ours
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(n)] for n in names[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": md5("batches.meta")})
    d = load_dataset("cifar10", tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert d.classes[0] == "c0" and 0 <= d.x_train.min() and d.x_train.max() <= 1


def test_cifar10_refuses_files_that_fail_the_official_md5(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (base / name).write_bytes(b"not the real file")
    with pytest.raises(RuntimeError, match="corrupted"):
        load_dataset("cifar10", tmp_path)


def _ppm(path, size, colour):
    Image.new("RGB", size, colour).save(path, format="PPM")


def test_gtsrb_layout(tmp_path):
    base = tmp_path / "gtsrb" / "GTSRB"
    for cls in (0, 1, 42):
        folder = base / "Training" / f"{cls:05d}"
        folder.mkdir(parents=True)
        for i in range(2):
            _ppm(folder / f"00000_{i:05d}.ppm", (30 + i, 35), (cls * 5, 0, 0))
    test_dir = base / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i, cls in enumerate((1, 42, 0)):
        _ppm(test_dir / f"{i:05d}.ppm", (40, 41), (0, cls * 5, 0))
        rows.append(f"{i:05d}.ppm;40;41;5;5;35;36;{cls}")
    (tmp_path / "gtsrb" / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    d = load_dataset("gtsrb", tmp_path, image_size=32)
    assert d.x_train.shape == (6, 3, 32, 32) and d.x_test.shape == (3, 3, 32, 32)
    assert d.num_classes == 43 and d.y_test.tolist() == [1, 42, 0]
    assert sorted(set(d.y_train.tolist())) == [0, 1, 2]  # ImageFolder indexes the folders present


def test_tiny_imagenet_layout(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    for w in wnids:
        (base / "train" / w / "images").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 64), (i * 40, 0, 0)).save(base / "train" / w / "images" / f"{w}_{i}.JPEG")
    (base / "val" / "images").mkdir(parents=True)
    lines = []
    for i, w in enumerate(wnids * 2):
        Image.new("RGB", (64, 64), (0, i * 40, 0)).save(base / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    d = load_dataset("tiny_imagenet", tmp_path)
    assert d.x_train.shape == (6, 3, 64, 64) and d.x_test.shape == (4, 3, 64, 64)
    assert d.y_test.tolist() == [0, 1, 0, 1] and d.num_classes == 2


def test_mini_imagenet_image_folders(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("n0001", "n0002"):
            folder = tmp_path / "mini-imagenet" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (100, 90), (i * 50, 10, 10)).save(folder / f"{i}.jpg")
    d = load_dataset("mini_imagenet", tmp_path, image_size=84)
    assert d.x_train.shape == (6, 3, 84, 84) and d.x_test.shape == (4, 3, 84, 84)
    assert d.classes == ["n0001", "n0002"]


def test_digits_split_is_fixed_and_in_unit_range(digits):
    assert digits.x_train.shape == (1438, 1, 8, 8) and digits.x_test.shape == (359, 1, 8, 8)
    assert digits.x_train.min() == 0 and digits.x_train.max() == 1
    again = load_dataset("digits")
    assert torch.equal(again.x_test, digits.x_test)
    mean, std = digits.channel_stats()
    assert len(mean) == len(std) == 1 and std[0] > 0


def test_subsets_are_seeded(digits):
    a = load_dataset("digits", n_train=100, n_test=50, seed=3)
    b = load_dataset("digits", n_train=100, n_test=50, seed=3)
    c = load_dataset("digits", n_train=100, n_test=50, seed=4)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    assert len(a.x_test) == 50


def test_batches_cover_every_index_once():
    seen = torch.cat(list(batches(10, 3, torch.Generator().manual_seed(0))))
    assert sorted(seen.tolist()) == list(range(10))
    assert [b.tolist() for b in batches(5, 2)] == [[0, 1], [2, 3], [4]]


def test_image_folder_reads_ones_own_images_of_any_size(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for k, cls in enumerate(("cat", "dog", "fox")):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                size = (20 + 7 * i, 31)                       # sizes differ, as they do
                img = Image.new("L" if i else "RGB", size, 60 * k + 10 * i)
                img.save(folder / f"{i}.{'png' if i else 'jpg'}")
    d = load_dataset("image_folder", tmp_path, image_size=16)
    assert d.x_train.shape == (9, 3, 16, 16) and d.x_test.shape == (6, 3, 16, 16)
    assert d.classes == ["cat", "dog", "fox"] and d.num_classes == 3
    assert d.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    # a grey fox image of value 130 reads as 130/255 in every channel
    assert torch.allclose(d.x_train[7], torch.full((3, 16, 16), 130 / 255), atol=1e-6)


def test_image_folder_says_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="dataset.root"):
        load_dataset("image_folder", None)
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "a" / "0.png")
    with pytest.raises(DataError, match="test does not exist"):
        load_dataset("image_folder", tmp_path)
    (tmp_path / "test" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "test" / "b" / "0.png")
    with pytest.raises(DataError, match="class folders"):
        load_dataset("image_folder", tmp_path)
