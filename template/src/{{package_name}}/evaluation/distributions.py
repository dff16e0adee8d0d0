"""Prediction distributions: what the model predicts on each split, beside what is true.

A classifier that predicts one class far more often than it occurs, or whose confidence piles
up at 1.0 even where it is wrong, and a regressor whose outputs are squeezed towards the mean,
show it here before any metric does. Per split: for classification the counts of true and
predicted classes and a histogram of the confidence (the highest probability), split into right
and wrong predictions; for regression histograms of the true and predicted values on shared bins.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .plots import DPI

CONFIDENCE_BINS = 10
VALUE_BINS = 20


def classification(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Class counts (true, predicted) and the confidence histogram of one split."""
    num_classes = probs.shape[1]
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    right = predicted == y
    edges = np.linspace(0.0, 1.0, CONFIDENCE_BINS + 1)
    return {
        "true": np.bincount(y, minlength=num_classes).tolist(),
        "predicted": np.bincount(predicted, minlength=num_classes).tolist(),
        "edges": edges.tolist(),
        "right": np.histogram(confidence[right], edges)[0].tolist(),
        "wrong": np.histogram(confidence[~right], edges)[0].tolist(),
        "mean_confidence": float(confidence.mean()) if len(y) else float("nan"),
    }


def regression(y: np.ndarray, pred: np.ndarray, edges: np.ndarray) -> dict[str, Any]:
    """Histograms of the true and the predicted values of one split on ``edges``."""
    y, pred = np.ravel(y), np.ravel(pred)
    return {
        "edges": edges.tolist(),
        "true": np.histogram(np.clip(y, edges[0], edges[-1]), edges)[0].tolist(),
        "predicted": np.histogram(np.clip(pred, edges[0], edges[-1]), edges)[0].tolist(),
        "true_mean": float(y.mean()),
        "true_std": float(y.std()),
        "predicted_mean": float(pred.mean()),
        "predicted_std": float(pred.std()),
    }


def of_splits(splits: Mapping[str, tuple[np.ndarray, np.ndarray]], task: str) -> dict[str, Any]:
    """``{split: (y, probabilities or predicted values)}`` -> ``{split: distribution}``."""
    if task == "classification":
        return {name: classification(y, out) for name, (y, out) in splits.items()}
    values = np.concatenate([np.ravel(v) for pair in splits.values() for v in pair])
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, VALUE_BINS + 1)
    return {name: regression(y, out, edges) for name, (y, out) in splits.items()}


def tables(
    distributions: Mapping[str, dict[str, Any]], class_names: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """The distributions as tables for the tracker: ``{name: DataFrame}``, names per split."""
    out = {}
    for split, d in distributions.items():
        edges = np.asarray(d["edges"])
        if "right" in d:
            names = [str(n) for n in (class_names or range(len(d["true"])))]
            out[f"class_distribution_{split}"] = pd.DataFrame(
                {"class": names, "true": d["true"], "predicted": d["predicted"]}
            )
            out[f"confidence_histogram_{split}"] = pd.DataFrame(
                {"from": edges[:-1], "to": edges[1:], "right": d["right"], "wrong": d["wrong"]}
            )
        else:
            out[f"value_histogram_{split}"] = pd.DataFrame(
                {
                    "from": edges[:-1],
                    "to": edges[1:],
                    "true": d["true"],
                    "predicted": d["predicted"],
                }
            )
    return out


def chart(
    distributions: Mapping[str, dict[str, Any]],
    path: Path,
    class_names: Sequence[str] | None = None,
) -> Path:
    """One row per split: classes and confidence (classification), or values (regression)."""
    splits = list(distributions)
    classification_task = "right" in distributions[splits[0]]
    columns = 2 if classification_task else 1
    fig = Figure(figsize=(5.5 * columns, 3.2 * len(splits)))
    axes = np.atleast_2d(fig.subplots(len(splits), columns, squeeze=False))
    for row, split in enumerate(splits):
        d = distributions[split]
        edges = np.asarray(d["edges"])
        if classification_task:
            names = [str(n) for n in (class_names or range(len(d["true"])))]
            x = np.arange(len(names))
            ax = axes[row, 0]
            ax.bar(x - 0.2, d["true"], width=0.4, label="true")
            ax.bar(x + 0.2, d["predicted"], width=0.4, label="predicted")
            ax.set_xticks(x)
            ax.set_xticklabels(names)
            ax.set(ylabel="rows", title=f"Classes ({split})")
            ax.legend()
            ax = axes[row, 1]
            widths = np.diff(edges)
            ax.bar(edges[:-1], d["right"], width=widths, align="edge", label="right")
            ax.bar(
                edges[:-1], d["wrong"], width=widths, align="edge", bottom=d["right"], label="wrong"
            )
            ax.set(xlim=(0, 1), xlabel="confidence", ylabel="rows")
            ax.set_title(f"Confidence ({split}, mean {d['mean_confidence']:.2f})")
            ax.legend(loc="upper left")
        else:
            ax = axes[row, 0]
            centres = (edges[:-1] + edges[1:]) / 2
            ax.step(centres, d["true"], where="mid", label="true")
            ax.step(centres, d["predicted"], where="mid", label="predicted")
            ax.set(xlabel="value", ylabel="rows")
            ax.set_title(
                f"Values ({split}): predicted std {d['predicted_std']:.3g}, "
                f"true {d['true_std']:.3g}"
            )
            ax.legend()
        for ax in axes[row]:
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path
