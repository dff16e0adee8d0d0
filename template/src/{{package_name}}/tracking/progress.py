"""Charts of a training run's progress: the training and validation curves with the
generalisation gap, and a grid of predictions on a fixed validation batch after each validation.

Drawn while training (``training/health.py``) and after it (``records.py``), so they live in
tracking, below training and evaluation (``tests/test_layers.py``). Same habits as
``evaluation/plots.py``: matplotlib's object API, PNG files, no display. The grid is one
image with captions rather than one axes per picture: it is drawn after every validation, so it
has to be cheap (about 50 ms).
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

DPI = 110  # as evaluation/plots.py, not imported: it pulls in scikit-learn (a second of start-up)


def learning_curves(history: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path:
    """Train and validation loss against the step, and the generalisation gap beside them.

    ``history`` is the trainer's ``history.json``: ``{"train": [{"step", "train/loss"}],
    "val": [{"step", "val/loss", "val/generalisation_gap", ...}]}``.
    """
    fig = Figure(figsize=(11, 4.5))
    loss_ax, gap_ax = fig.subplots(1, 2)
    for split, key, style in (("train", "train/loss", "-"), ("val", "val/loss", "o-")):
        rows = [r for r in history.get(split, []) if r.get(key) is not None]
        if rows:
            loss_ax.plot(
                [r["step"] for r in rows], [r[key] for r in rows], style, label=split, ms=3
            )
    losses = [r.get("train/loss") for r in history.get("train", [])]
    positive = [v for v in losses if v is not None and v > 0]
    if positive and max(positive) > 20 * min(positive):
        loss_ax.set_yscale("log")
    loss_ax.set(xlabel="optimizer step", ylabel="loss", title="Training and validation loss")
    loss_ax.legend()
    rows = [r for r in history.get("val", []) if r.get("val/generalisation_gap") is not None]
    gap_ax.axhline(0, linestyle="--", color="grey")
    if rows:
        gap_ax.plot(
            [r["step"] for r in rows], [r["val/generalisation_gap"] for r in rows], "o-", ms=3
        )
    gap_ax.set(
        xlabel="optimizer step",
        ylabel="val/loss - train/loss",
        title="Generalisation gap (growing: overfitting)",
    )
    for ax in (loss_ax, gap_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def prediction_grid(
    images: np.ndarray,
    labels: Sequence[int],
    predicted: Sequence[int],
    confidence: Sequence[float],
    path: Path,
    title: str = "",
    columns: int = 8,
) -> Path:
    """Images ``(k, H, W)`` in [0, 1] with "label -> prediction (confidence)" above each, in
    green when right and red when wrong."""
    k, height, width = images.shape
    rows = -(-k // columns)
    pad = max(3, height // 8)
    top = 2 * pad + max(2, height // 3)  # room for the caption above each picture
    canvas = np.zeros((rows * (height + top) + pad, columns * (width + pad) + pad))  # white
    low, high = float(images.min()), float(images.max())
    scaled = (images - low) / (high - low) if high > low else np.zeros_like(images)
    fig = Figure(figsize=(1.15 * columns, 1.45 * rows + 0.4))
    ax = fig.add_axes((0, 0, 1, 0.9 if title else 1))
    for i in range(k):
        r, c = divmod(i, columns)
        y, x = r * (height + top) + top, c * (width + pad) + pad
        canvas[y - 1 : y + height + 1, x - 1 : x + width + 1] = 0.3  # a light grey frame
        canvas[y : y + height, x : x + width] = scaled[i]
        right = labels[i] == predicted[i]
        ax.text(
            x + width / 2,
            y - 1 - pad,
            f"{labels[i]} -> {predicted[i]} ({confidence[i]:.2f})",
            ha="center",
            va="bottom",
            fontsize=8,
            color="green" if right else "red",
        )
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(f"{title}: label -> prediction (confidence)", fontsize=9)
    fig.savefig(path, dpi=90)
    return path
