"""Behavioural tests: how predictions respond to changed inputs (Ribeiro et al., CheckList).

Inputs are rows of features ``(n, features)`` in the processed units (tabular features are
standardised, pixels lie in [0, 1]); images are flattened by the caller. A transform is a config
mapping with a ``kind``:

- ``noise``: add Gaussian noise of standard deviation ``level``, to ``features`` (default all);
- ``dropout``: set a random share ``level`` of the values to 0 (a blank pixel, or a tabular
  feature at its training mean);
- ``shift``: add ``by`` to ``features``;
- ``scale``: multiply ``features`` by ``by``.

``predict`` maps such rows to the model's outputs as ``Task.for_evaluation`` gives them (logits
``(n, classes)``, or values ``(n,)``); the task (``tasks/``) says what they mean: its main metric,
its prediction, and what a directional test watches.

Results say what changed in the features' raw units (``describe``: ``bmi +4.45``), given the
scaling ``prepare`` applied (``raw = x * scale + offset``), and what ``before`` and ``after``
are (``output``: the predicted value in the target's units, a log-odds, a class).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..tasks import Task

Predict = Callable[[np.ndarray], np.ndarray]


def transform(
    x: np.ndarray, spec: Mapping[str, Any], names: Sequence[str], rng: np.random.Generator
) -> np.ndarray:
    """A transformed copy of ``x`` (see the module's docstring for the kinds)."""
    kind = spec["kind"]
    columns = _columns(spec.get("features"), names)
    out = np.array(x, dtype=np.float32, copy=True)
    part = out[:, columns]
    if kind == "noise":
        part += rng.normal(0.0, float(spec["level"]), size=part.shape)
    elif kind == "dropout":
        part[rng.random(part.shape) < float(spec["level"])] = 0.0
    elif kind == "shift":
        part += float(spec["by"])
    elif kind == "scale":
        part *= float(spec["by"])
    else:
        raise ValueError(f"unknown transform kind {kind!r}: use noise, dropout, shift or scale")
    out[:, columns] = part
    return out


def _columns(features: Sequence[str] | str | None, names: Sequence[str]) -> list[int]:
    if features is None:
        return list(range(len(names)))
    wanted = [features] if isinstance(features, str) else list(features)
    unknown = [f for f in wanted if f not in names]
    if unknown:
        raise ValueError(f"unknown features {unknown} in a behavioural test; known: {list(names)}")
    return [list(names).index(f) for f in wanted]


def describe(
    spec: Mapping[str, Any], names: Sequence[str], scaling: Mapping[str, Any] | None = None
) -> str:
    """A transform in words, amounts in the features' raw units when ``scaling`` is known.

    ``scaling`` holds ``offset`` and ``scale`` per feature (the checkpoint's ``feature_scale``):
    a shift by 1.0 is one ``scale`` (for tables, one standard deviation of the training split).
    Without it, amounts are in the processed units.
    """
    kind = spec["kind"]
    columns = _columns(spec.get("features"), names)
    scale = np.asarray(scaling["scale"] if scaling else np.ones(len(names)), dtype=np.float64)
    offset = np.asarray(scaling["offset"] if scaling else np.zeros(len(names)), dtype=np.float64)
    units = "raw units" if scaling else "processed units"

    def amounts(values: np.ndarray, sign: str = "") -> str:
        """Per feature for up to three, else one number for all, or their range."""
        values = values[columns]
        if len(columns) <= 3:
            return ", ".join(
                f"{names[i]} {v:{sign}.3g}" for i, v in zip(columns, values, strict=True)
            )
        every = f"all {len(columns)} features"
        if np.allclose(values, values[0]):
            return f"{every} {values[0]:{sign}.3g}"
        return f"{every} {values.min():{sign}.3g} to {values.max():{sign}.3g}"

    if kind == "shift":
        return f"{amounts(float(spec['by']) * scale, '+')} ({units})"
    if kind == "noise":
        sd = amounts(float(spec["level"]) * scale)
        return f"Gaussian noise, standard deviation: {sd} ({units})"
    if kind == "scale":
        return f"x{float(spec['by']):g} around the training offset: {amounts(offset)} ({units})"
    if kind == "dropout":
        level = float(spec["level"])
        return f"{level:.0%} of the values set to the training offset: {amounts(offset)} ({units})"
    raise ValueError(f"unknown transform kind {kind!r}: use noise, dropout, shift or scale")


def perturbation_curve(
    predict: Predict,
    x: np.ndarray,
    y_true: np.ndarray,
    spec: Mapping[str, Any],
    names: Sequence[str],
    seed: int,
    *,
    task: Task,
) -> dict[str, Any]:
    """The task's main metric (accuracy, or MAE) at each ``level`` of one transform."""
    levels = [float(level) for level in spec["levels"]]
    scores = []
    for level in levels:
        rng = np.random.default_rng(seed)
        changed = x if level == 0 else transform(x, {**spec, "level": level}, names, rng)
        scores.append(task.main_score(predict(changed), y_true))
    metric = task.main_metric
    return {"name": spec["name"], "kind": spec["kind"], "levels": levels, metric: scores}


def invariance_test(
    predict: Predict,
    x: np.ndarray,
    ids: np.ndarray,
    spec: Mapping[str, Any],
    names: Sequence[str],
    seed: int,
    max_examples: int = 5,
    scaling: Mapping[str, Any] | None = None,
    *,
    task: Task,
) -> dict[str, Any]:
    """A transform that must not change the prediction (``Task.changed``).

    Classification fails a row when its predicted class changes; regression when the value moves
    by more than ``tolerance`` (in the target's units).
    """
    before = task.prediction(predict(x))
    changed = transform(x, spec["transform"], names, np.random.default_rng(seed))
    after = task.prediction(predict(changed))
    failed = task.changed(before, after, float(spec.get("tolerance", 0.0)))
    output = task.prediction_words
    change = describe(spec["transform"], names, scaling)
    return _result(spec, failed, ids, before, after, max_examples, change, output)


def directional_test(
    predict: Predict,
    x: np.ndarray,
    ids: np.ndarray,
    spec: Mapping[str, Any],
    names: Sequence[str],
    seed: int,
    max_examples: int = 5,
    scaling: Mapping[str, Any] | None = None,
    *,
    task: Task,
) -> dict[str, Any]:
    """A transform that must move the output (``Task.watched``) one way: ``expect: increase``
    or ``decrease``.

    The output is the predicted value (regression) or the log-odds of class ``target_class``, a
    class index or ``predicted`` (each row's predicted class before the change); log-odds, unlike
    probabilities, do not saturate at 0 and 1. A row fails unless the output moves the expected
    way by more than ``min_change`` (default 0).
    """
    expect = spec["expect"]
    if expect not in ("increase", "decrease"):
        raise ValueError(f"directional test {spec['name']!r}: expect must be increase or decrease")
    original = predict(x)
    changed = predict(transform(x, spec["transform"], names, np.random.default_rng(seed)))
    before, after, output = task.watched(original, changed, spec)
    delta = after - before if expect == "increase" else before - after
    failed = ~(delta > float(spec.get("min_change", 0.0)))
    change = describe(spec["transform"], names, scaling)
    return _result(spec, failed, ids, before, after, max_examples, change, output)


def _result(spec, failed, ids, before, after, max_examples, change, output) -> dict[str, Any]:
    where = np.flatnonzero(failed)[:max_examples]
    return {
        "name": spec["name"],
        "change": change,
        "output": output,
        "failure_rate": float(np.mean(failed)) if len(failed) else 0.0,
        "failures": int(np.sum(failed)),
        "rows": len(failed),
        "examples": [
            {"id": plain(ids[i]), "before": plain(before[i]), "after": plain(after[i])}
            for i in where
        ],
    }


def plain(value: Any) -> Any:
    """A numpy scalar as a Python one, so that the results serialise to JSON."""
    return value.item() if isinstance(value, np.generic) else value
