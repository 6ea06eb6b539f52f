"""The pictures of a tracing experiment (matplotlib, PNG), from plain arrays or collected rows.

Each function draws one figure, writes it atomically to ``path`` and returns the path; the report
stage draws the per-run ones, ``make_tables.py --out`` the ones across runs, notebooks either.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from tracer.io import atomic_write_bytes  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def statistic_histogram(statistic: Tensor, source: Tensor, path: str | Path, *,
                        title: str = "", label: str = "DOL") -> Path:
    """Histogram of each example's statistic (DOL) at its source copy vs at the innocent copies.

    Shape: statistic [n, m]; source [n].
    """
    n, m = statistic.shape
    is_source = np.zeros((n, m), dtype=bool)
    is_source[np.arange(n), source.numpy()] = True
    values = statistic.numpy()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    lo, hi = float(values.min()), float(values.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
    ax.hist(values[~is_source], bins=bins, alpha=0.6, density=True, label="innocent copies")
    ax.hist(values[is_source], bins=bins, alpha=0.6, density=True, label="source copy")
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def confusion_matrix(source: Tensor, named: Tensor, num_copies: int, path: str | Path, *,
                     title: str = "") -> Path:
    """Verdict against source copy; the last column counts abstentions (named = -1)."""
    counts = np.zeros((num_copies, num_copies + 1), dtype=int)
    for s, v in zip(source.tolist(), named.tolist()):
        counts[s, v if v >= 0 else num_copies] += 1
    # Past a few dozen copies (projection keys allow thousands) cells are pixels: no counts in
    # them, a bounded figure, default ticks.
    small = num_copies <= 25
    fig, ax = plt.subplots(figsize=(0.55 * num_copies + 2.2, 0.5 * num_copies + 1.6) if small
                           else (10, 9))
    ax.imshow(counts, cmap="Blues", aspect="auto", interpolation="nearest")
    if small:
        for (i, j), c in np.ndenumerate(counts):
            ax.text(j, i, str(c), ha="center", va="center", fontsize=8,
                    color="white" if c > counts.max() / 2 else "black")
        ax.set_xticks(range(num_copies + 1), [*map(str, range(num_copies)), "none"])
        ax.set_yticks(range(num_copies))
    ax.set_xlabel("verdict")
    ax.set_ylabel("source copy")
    ax.set_title(title)
    return _save(fig, path)


def adversarial_examples(x_clean: Tensor, x_adv: Tensor, path: str | Path, *, count: int = 6,
                         title: str = "") -> Path:
    """Rows: clean image, adversarial image, and the perturbation magnified to fill [0, 1]
    (the factor is written under each).

    Shape: x_clean, x_adv [n, C, H, W] in [0, 1].
    """
    count = min(count, len(x_adv))
    if count == 0:
        raise ValueError("no adversarial examples to draw")
    fig, axes = plt.subplots(3, count, figsize=(1.5 * count, 4.8), squeeze=False)
    for j in range(count):
        delta = (x_adv[j] - x_clean[j]).numpy()
        scale = 0.5 / max(float(np.abs(delta).max()), 1e-12)
        for i, img in enumerate((x_clean[j].numpy(), x_adv[j].numpy(), 0.5 + scale * delta)):
            ax = axes[i, j]
            ax.imshow(_hwc(img), cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[2, j].set_xlabel(f"x{scale:.0f}", fontsize=8)
    for i, name in enumerate(("clean", "adversarial", "perturbation")):
        axes[i, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _hwc(img: np.ndarray) -> np.ndarray:
    img = np.clip(img, 0, 1)
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def accuracy_curve(rows: list[dict], x: str, path: str | Path, *, value: str = "trace_acc",
                   series: tuple[str, ...] = ("method", "attack"), title: str = "",
                   xlabel: str | None = None) -> Path:
    """``value`` (a (mean, std) rate, drawn in percent with std bars) against ``x``, one line per
    distinct ``series`` (labelled by the series keys that differ between lines); rows whose ``x``
    or ``value`` is None are left out."""
    lines: dict[tuple, list[tuple[float, float, float]]] = {}
    for r in rows:
        if r.get(x) is None or r.get(value) is None:
            continue
        mean, std = r[value]
        lines.setdefault(tuple(r[k] for k in series), []).append((float(r[x]), mean, std))
    if not lines:
        raise ValueError(f"no rows with both {x!r} and {value!r} to draw")
    varying = [i for i in range(len(series)) if len({k[i] for k in lines}) > 1]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for key, pts in sorted(lines.items(), key=lambda kv: tuple(map(str, kv[0]))):
        pts.sort()
        xs, ms, ss = zip(*pts)
        ax.errorbar(xs, [100 * v for v in ms], yerr=[100 * v for v in ss], marker="o",
                    capsize=3, label=", ".join(f"{series[i]}={key[i]}" for i in varying) or None)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(f"{value} %")
    ax.set_ylim(0, 102)
    ax.set_title(title)
    if varying:
        ax.legend(fontsize=7)
    return _save(fig, path)
