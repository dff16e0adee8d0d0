"""Slice-based evaluation: the metric on subgroups, so that a good average cannot hide a bad group.

A slice spec is a config mapping with a ``kind``:

- ``label``: one slice per true class (classification);
- ``column``: one slice per distinct value of ``column`` (a categorical feature);
- ``binned``: ``bins`` quantile bins of the numeric ``column``.

The metric is the task's main metric (``Task.main_metric``: accuracy for classification, higher
is better; mean absolute error for regression, lower is better). The ``flag_worst`` worst slices
with at least ``min_rows`` rows are flagged when they are worse than the whole split.

Slices are named in the features' raw units (``bmi=(25.1, 29.8]``, ``sex=2``): ``in_raw_units``
undoes the scaling ``prepare`` applied before the frame is sliced.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..tasks import Task


def in_raw_units(frame: pd.DataFrame, scaling: Mapping[str, Any]) -> pd.DataFrame:
    """A copy of processed rows with the features back in raw units: ``x * scale + offset``.

    ``scaling`` is the checkpoint's ``feature_scale`` (``features``, ``offset``, ``scale``).
    """
    out = frame.copy()
    features = [f for f in scaling["features"] if f in out.columns]
    index = [list(scaling["features"]).index(f) for f in features]
    offset = np.asarray(scaling["offset"], dtype=np.float64)[index]
    scale = np.asarray(scaling["scale"], dtype=np.float64)[index]
    out[features] = out[features].to_numpy(dtype=np.float64) * scale + offset
    return out


def slice_groups(
    frame: pd.DataFrame, y_true: np.ndarray, spec: Mapping[str, Any]
) -> list[tuple[str, np.ndarray]]:
    """``(slice name, boolean row mask)`` for each slice of one spec."""
    kind = spec["kind"]
    if kind == "label":
        values = pd.Series(np.asarray(y_true), name="label")
    elif kind == "column":
        values = frame[spec["column"]].reset_index(drop=True)
    elif kind == "binned":
        # Quantile bins hold similar numbers of rows; equal values never straddle two bins.
        column = frame[spec["column"]].reset_index(drop=True)
        values = pd.qcut(column, q=int(spec.get("bins", 4)), duplicates="drop")
    else:
        raise ValueError(f"unknown slice kind {kind!r}: use label, column or binned")
    name = spec.get("name") or (values.name if kind != "binned" else spec["column"])
    groups = []
    for value in sorted(values.dropna().unique()):
        label = _label(value)
        groups.append((f"{name}={label}", (values == value).to_numpy()))
    return groups


def _label(value) -> str:
    if isinstance(value, pd.Interval):
        return f"({value.left:.3g}, {value.right:.3g}]"
    return f"{value:.3g}" if isinstance(value, float | np.floating) else str(value)


def evaluate_slices(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    output: np.ndarray,
    specs: Sequence[Mapping[str, Any]],
    flag_worst: int = 3,
    min_rows: int = 10,
    *,
    task: Task,
) -> dict[str, Any]:
    """The task's main metric of every slice, sorted worst first, with the worst ones flagged.

    ``output`` is the model's outputs as ``Task.for_evaluation`` gives them.
    """
    overall = task.main_score(output, y_true)
    rows: list[dict[str, Any]] = []
    for spec in specs:
        for name, mask in slice_groups(frame, y_true, spec):
            if mask.any():
                metric = task.main_score(output[mask], y_true[mask])
                gap = metric - overall if task.higher_is_better else overall - metric
                rows.append({"slice": name, "rows": int(mask.sum()), "metric": metric, "gap": gap})
    rows.sort(key=lambda row: row["gap"])
    flagged = 0
    for row in rows:
        row["flagged"] = flagged < flag_worst and row["rows"] >= min_rows and row["gap"] < 0
        flagged += row["flagged"]
    return {
        "metric": task.main_metric,
        "overall": overall,
        "slices": rows,
    }
