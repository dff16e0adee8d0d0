"""The report's charts, as PNG files that open anywhere (no browser, no CDN, no display).

Figures are built with matplotlib's object API (``Figure``, not ``pyplot``): no global state, no
GUI backend, nothing left open between charts.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from .results import Curve

DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def confusion_matrix(matrix: np.ndarray, path: Path, class_names: Sequence[str]) -> Path:
    size = max(4.0, 0.45 * len(class_names) + 2.5)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    # Colour by the share of each true class, so that small classes are as readable as big ones.
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if shares[i, j] > 0.5 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=9)
    ticks = range(len(class_names))
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted class", ylabel="true class")
    ax.set_xticklabels(class_names)
    ax.set_yticklabels(class_names)
    ax.set_title("Confusion matrix (test)")
    return _save(fig, path)


def reliability_diagram(curves: dict[str, dict[str, Any]], path: Path) -> Path:
    """Accuracy against mean confidence per bin, one line per model; the diagonal is perfect.

    Below it, how many rows each bin holds: a bin of three rows can sit far from the diagonal
    by chance alone.
    """
    fig = Figure(figsize=(6, 6.5))
    ax, counts_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for number, (label, bins) in enumerate(curves.items()):
        confidence, accuracy = np.array(bins["confidence"]), np.array(bins["accuracy"])
        count = np.array(bins["count"])
        kept = count > 0
        line = ax.plot(confidence[kept], accuracy[kept], marker="o", label=label)[0]
        edges = np.array(bins["edges"])
        width = (edges[1] - edges[0]) / (len(curves) + 1)
        counts_ax.bar(
            edges[:-1] + width * (number + 0.5),
            count,
            width=width,
            align="edge",
            color=line.get_color(),
            label=label,
        )
    ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="accuracy in the bin")
    ax.set_title("Reliability diagram (test)")
    ax.legend(loc="upper left")
    counts_ax.set(xlabel="confidence (bins of equal width)", ylabel="rows")
    counts_ax.set_yscale("symlog")
    for axis in (ax, counts_ax):
        axis.grid(alpha=0.3)
    return _save(fig, path)


def confidence_curve(curve: dict[str, list], path: Path, chosen: float | None = None) -> Path:
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    ax.plot(curve["threshold"], curve["accuracy"], label="accuracy of the kept predictions")
    ax.plot(curve["threshold"], curve["coverage"], label="coverage (share of rows kept)")
    if chosen is not None:
        ax.axvline(chosen, linestyle="--", color="grey", label=f"threshold {chosen:.2f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="confidence threshold", ylabel="share")
    ax.set_title("Accuracy and coverage by confidence threshold (test)")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def roc_pr(y_true: np.ndarray, p_positive: np.ndarray, threshold: float, path: Path) -> Path:
    """ROC and precision-recall curves of a binary classifier, the chosen threshold marked."""
    fig = Figure(figsize=(10, 4.5))
    roc_ax, pr_ax = fig.subplots(1, 2)
    fpr, tpr, roc_thresholds = roc_curve(y_true, p_positive)
    roc_ax.plot(fpr, tpr, label=f"model (AUC {auc(fpr, tpr):.3f})")
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    at = int(np.argmin(np.abs(roc_thresholds - threshold)))
    roc_ax.plot(fpr[at], tpr[at], "o", color="black", label=f"threshold {threshold:.2f}")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    roc_ax.legend(loc="lower right")
    precision, recall, _ = precision_recall_curve(y_true, p_positive)
    pr_ax.plot(recall, precision, label="model")
    pr_ax.axhline(np.mean(y_true), linestyle="--", color="grey", label="chance (positive share)")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    pr_ax.legend(loc="lower left")
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def roc_pr_one_vs_rest(
    y_true: np.ndarray, probs: np.ndarray, path: Path, class_names: Sequence[str]
) -> Path:
    """ROC and precision-recall curves of each class against the rest (more than two classes)."""
    fig = Figure(figsize=(10, 4.5))
    roc_ax, pr_ax = fig.subplots(1, 2)
    y_true = np.asarray(y_true)
    for k, name in enumerate(class_names):
        positive = y_true == k
        if positive.all() or not positive.any():
            continue  # a class absent from the test split (or alone in it) has no curve
        fpr, tpr, _ = roc_curve(positive, probs[:, k])
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
        precision, recall, _ = precision_recall_curve(positive, probs[:, k])
        pr_ax.plot(recall, precision, label=str(name))
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate")
    roc_ax.set_title("ROC, each class against the rest (test)")
    pr_ax.set(xlabel="recall", ylabel="precision")
    pr_ax.set_title("Precision-recall, each class against the rest (test)")
    # Many classes (ten digits): a smaller legend beside the curves, not over them.
    size = "small" if len(class_names) > 5 else None
    roc_ax.legend(loc="lower right", fontsize=size)
    pr_ax.legend(loc="lower left", fontsize=size)
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def residuals(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    y_true, y_pred = np.ravel(y_true), np.ravel(y_pred)
    fig = Figure(figsize=(10, 4.5))
    fit_ax, res_ax = fig.subplots(1, 2)
    fit_ax.scatter(y_true, y_pred, s=12, alpha=0.7)
    low, high = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    fit_ax.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect")
    fit_ax.set(xlabel="true value", ylabel="predicted value", title="Predicted vs true (test)")
    fit_ax.legend(loc="upper left")
    res_ax.scatter(y_pred, y_true - y_pred, s=12, alpha=0.7)
    res_ax.axhline(0, linestyle="--", color="grey")
    res_ax.set(xlabel="predicted value", ylabel="residual (true - predicted)", title="Residuals")
    for ax in (fit_ax, res_ax):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def perturbation_curves(curves: Sequence[Curve], path: Path) -> Path:
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    metric = curves[0].metric if curves else "mae"
    for curve in curves:
        ax.plot(curve.levels, curve.values, marker="o", label=curve.name)
    ax.set(xlabel="perturbation level", ylabel=metric if metric == "accuracy" else "MAE")
    ax.set_title("Robustness to perturbed inputs (test)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def image_grid(rows: dict[str, tuple[np.ndarray, list[str]]], path: Path, title: str = "") -> Path:
    """One row of images per entry: ``{row title: (images (k, H, W), captions)}``."""
    columns = max(len(images) for images, _ in rows.values())
    fig = Figure(figsize=(1.3 * columns + 0.6, 1.7 * len(rows) + 0.5))
    axes = np.atleast_2d(fig.subplots(len(rows), columns, squeeze=False))
    for r, (row_title, (images, captions)) in enumerate(rows.items()):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c], cmap="gray_r", vmin=0, vmax=1)
                ax.set_title(captions[c], fontsize=8)
            else:
                ax.set_axis_off()
        axes[r, 0].set_ylabel(row_title, fontsize=9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
