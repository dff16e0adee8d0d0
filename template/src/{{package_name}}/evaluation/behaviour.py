"""Behavioural tests: how predictions respond to changed inputs (Ribeiro et al., CheckList).

Inputs are rows of features ``(n, features)`` in the processed units (tabular features are
standardised, pixels lie in [0, 1]); images are flattened by the caller. A transform is a config
mapping with a ``kind``:

- ``noise``: add Gaussian noise of standard deviation ``level``, to ``features`` (default all);
- ``dropout``: set a random share ``level`` of the values to 0 (a blank pixel, or a tabular
  feature at its training mean);
- ``shift``: add ``by`` to ``features``;
- ``scale``: multiply ``features`` by ``by``.

``predict`` maps such rows to logits ``(n, classes)`` (probabilities work too, but saturate)
or values ``(n,)``.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import log_softmax, logsumexp

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


def _score(y_true: np.ndarray, output: np.ndarray) -> float:
    """Accuracy for class scores, mean absolute error for values: the curves' y axis."""
    if output.ndim == 2:
        return float(np.mean(output.argmax(axis=1) == y_true))
    return float(np.mean(np.abs(output - np.ravel(y_true))))


def perturbation_curve(
    predict: Predict,
    x: np.ndarray,
    y_true: np.ndarray,
    spec: Mapping[str, Any],
    names: Sequence[str],
    seed: int,
) -> dict[str, Any]:
    """The metric (accuracy, or MAE for regression) at each ``level`` of one transform."""
    levels = [float(level) for level in spec["levels"]]
    scores = []
    for level in levels:
        rng = np.random.default_rng(seed)
        changed = x if level == 0 else transform(x, {**spec, "level": level}, names, rng)
        scores.append(_score(y_true, predict(changed)))
    metric = "accuracy" if predict(x[:1]).ndim == 2 else "mae"
    return {"name": spec["name"], "kind": spec["kind"], "levels": levels, metric: scores}


def invariance_test(
    predict: Predict,
    x: np.ndarray,
    ids: np.ndarray,
    spec: Mapping[str, Any],
    names: Sequence[str],
    seed: int,
    max_examples: int = 5,
) -> dict[str, Any]:
    """A transform that must not change the prediction.

    Classification fails a row when its predicted class changes; regression when the value moves
    by more than ``tolerance`` (in the target's units).
    """
    before = predict(x)
    after = predict(transform(x, spec["transform"], names, np.random.default_rng(seed)))
    if before.ndim == 2:
        before, after = before.argmax(axis=1), after.argmax(axis=1)
        failed = before != after
    else:
        failed = np.abs(after - before) > float(spec.get("tolerance", 0.0))
    return _result(spec, failed, ids, before, after, max_examples)


def directional_test(
    predict: Predict,
    x: np.ndarray,
    ids: np.ndarray,
    spec: Mapping[str, Any],
    names: Sequence[str],
    seed: int,
    max_examples: int = 5,
) -> dict[str, Any]:
    """A transform that must move the output one way: ``expect: increase`` or ``decrease``.

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
    if original.ndim == 1:
        before, after = original, changed
    else:
        target = spec.get("target_class", 1)
        k = original.argmax(axis=1) if target == "predicted" else np.full(len(x), int(target))
        before, after = _log_odds(original, k), _log_odds(changed, k)
    delta = after - before if expect == "increase" else before - after
    failed = ~(delta > float(spec.get("min_change", 0.0)))
    return _result(spec, failed, ids, before, after, max_examples)


def _log_odds(scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log P(k) - log P(not k) per row, from log-probabilities, so it stays finite when sure."""
    log_p = log_softmax(scores.astype(np.float64), axis=1)
    rows = np.arange(len(log_p))
    others = log_p.copy()
    others[rows, k] = -np.inf
    return log_p[rows, k] - logsumexp(others, axis=1)


def _result(spec, failed, ids, before, after, max_examples) -> dict[str, Any]:
    where = np.flatnonzero(failed)[:max_examples]
    return {
        "name": spec["name"],
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
