"""Plots for reports: confusion matrices and class distributions (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_confusion", "plot_class_counts", "plot_curves", "save_figure"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Lay out ``fig``, write it to ``path`` (folders created) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path,
                   *, title: str = "", normalise: bool = True) -> Path:
    """Save a confusion-matrix PNG (rows normalised to recall when ``normalise``)."""
    plt = _plt()
    cm = np.asarray(confusion, dtype=float)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise else cm
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(classes), 0.8 + 0.65 * len(classes)))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{shown[i, j]:.2f}" if normalise else int(cm[i, j]), ha="center",
                    va="center", fontsize=7, color="white" if shown[i, j] > 0.5 * shown.max() else "black")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path)


def plot_class_counts(counts: Mapping[str, Mapping[str, int]], path: str | Path, *,
                      title: str = "", classes: Sequence[str] | None = None) -> Path:
    """Grouped bar chart of class counts, one group per series (e.g. before / after balancing);
    ``classes`` fixes the order (default: sorted)."""
    plt = _plt()
    series = list(counts)
    classes = list(classes) if classes is not None else \
        sorted({c for s in counts.values() for c in s})
    x = np.arange(len(classes))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(classes)), 3.2))
    for i, s in enumerate(series):
        ax.bar(x + i * width, [counts[s].get(c, 0) for c in classes], width, label=s)
    ax.set_xticks(x + width * (len(series) - 1) / 2, classes, rotation=45, ha="right")
    ax.set_ylabel("items")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    return save_figure(fig, path)


def plot_curves(curves: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, *,
                title: str = "", xlabel: str = "severity (level index)", ylabel: str = "",
                reference: float | None = None) -> Path:
    """One panel per curve name: ``[(level, value), ...]`` as a line; ``reference`` (e.g. the
    clean figure) as a dashed line in every panel."""
    plt = _plt()
    names = list(curves)
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(3.0 * max(len(names), 1), 3.0),
                             sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        pts = list(curves[name])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
        if reference is not None:
            ax.axhline(reference, linestyle="--", color="grey", linewidth=1)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
