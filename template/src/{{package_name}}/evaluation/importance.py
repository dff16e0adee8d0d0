"""Permutation feature importance of a tabular model on the test split.

Shuffle one feature's column, score the model again, and call the loss in score that feature's
importance; repeat and average (scikit-learn's ``permutation_importance``, around the torch model
by a thin estimator). The score is the task's ``error`` (``Task.error``): the log loss for
classification (finer than accuracy, which a near-perfect model barely loses) and the mean
absolute error for regression, in the target's units. A feature whose shuffling does not hurt
is one the model does not use; a negative value is noise. Correlated features share their
importance: shuffling one leaves the other to stand in.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..tasks import Task
from .plots import DPI


class _Estimator:
    """What scikit-learn asks of a model here: ``fit`` (never called) and outputs on rows."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predict = predict

    def fit(self, x: np.ndarray, y: np.ndarray) -> "_Estimator":
        return self


def permutation(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    feature_names: Sequence[str],
    n_repeats: int = 5,
    seed: int = 0,
    *,
    task: Task,
) -> dict[str, Any]:
    """Importance of each column of ``x`` (rows, features), most important first.

    ``predict`` maps rows to outputs as ``Task.for_evaluation`` gives them.
    """
    from sklearn.inspection import permutation_importance

    def score(estimator: _Estimator, rows: np.ndarray, target: np.ndarray) -> float:
        return -task.error(estimator.predict(rows), target)  # scikit-learn: higher is better

    result = permutation_importance(
        _Estimator(predict), x, y, scoring=score, n_repeats=n_repeats, random_state=seed
    )
    order = np.argsort(-result.importances_mean, kind="stable")
    return {
        "metric": task.error_name,
        "baseline": -score(_Estimator(predict), x, y),
        "n_repeats": n_repeats,
        "features": [
            {
                "feature": str(feature_names[i]),
                "importance": float(result.importances_mean[i]),
                "std": float(result.importances_std[i]),
            }
            for i in order
        ],
    }


def table(importance: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(importance["features"])


def chart(importance: dict[str, Any], path: Path, top: int = 20) -> Path:
    """Horizontal bars of the ``top`` most important features, with their spread over repeats."""
    rows = importance["features"][:top][::-1]
    fig = Figure(figsize=(7, 1.0 + 0.28 * len(rows)))
    ax = fig.add_subplot()
    ax.barh(
        [r["feature"] for r in rows],
        [r["importance"] for r in rows],
        xerr=[r["std"] for r in rows],
        color="tab:blue",
    )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set(xlabel=f"increase in test {importance['metric']} when the feature is shuffled")
    ax.set_title(f"Permutation feature importance ({importance['n_repeats']} repeats, test)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path
