"""The whole evaluation of one model on arrays: what ``evaluate`` runs and the report shows.

It needs no checkpoint and no files: the model's outputs on the validation and test splits
(logits for classification, values for regression), a ``predict`` function for the behavioural
tests, and the settings of ``configs/evaluation/``. The validation split is used only to fit
what the test split is then judged with (the decision threshold, the temperature).
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax, softmax

from . import (
    behaviour,
    calibration,
    comparison,
    distributions,
    importance,
    metrics,
    slices,
    thresholds,
)


@dataclass
class Split:
    """One split: model inputs, true targets, the model's outputs, and columns for slicing
    (the features in raw units: ``slices.in_raw_units``)."""

    x: np.ndarray
    y: np.ndarray
    output: np.ndarray
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ids(self) -> np.ndarray:
        return self.frame["id"].to_numpy() if "id" in self.frame else np.arange(len(self.y))


def run(
    settings: Mapping[str, Any],
    val: Split,
    test: Split,
    predict: Callable[[np.ndarray], np.ndarray],
    y_train: np.ndarray,
    feature_names: list[str],
    seed: int = 0,
    others: Mapping[str, np.ndarray] | None = None,
    seed_groups: Mapping[str, Sequence[np.ndarray]] | None = None,
    scaling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every result, as plain data: ``metrics`` (flat, for metrics.json) and one entry per section.

    ``predict`` maps inputs shaped like ``test.x`` to outputs; ``others`` holds other models'
    outputs on the test split, to compare with row by row; ``seed_groups`` holds, per named
    configuration, the test outputs of its runs over several seeds (paired by position);
    ``scaling`` is the features' scaling (the checkpoint's ``feature_scale``), so that the
    behavioural tests say what they change in raw units.
    """
    classification = test.output.ndim == 2
    shape = test.x.shape[1:]

    def predict_rows(rows: np.ndarray) -> np.ndarray:
        return predict(rows.reshape(-1, *shape))

    if classification:
        results = _classification(settings, val, test, y_train, seed, others or {})
    else:
        results = _regression(settings, val, test, y_train, seed, others or {})
    results["slices"] = slices.evaluate_slices(
        test.frame,
        test.y,
        test.output,
        settings.get("slices", {}).get("specs", []),
        flag_worst=int(settings.get("slices", {}).get("flag_worst", 3)),
        min_rows=int(settings.get("slices", {}).get("min_rows", 10)),
    )
    results["behaviour"] = _behaviour(settings, test, predict_rows, feature_names, seed, scaling)
    # What the model predicts on each split (classes and confidence, or values).
    results["distributions"] = distributions.of_splits(
        {
            name: (split.y, softmax(split.output, axis=1) if classification else split.output)
            for name, split in (("val", val), ("test", test))
        },
        "classification" if classification else "regression",
    )
    # Tabular data: how much each feature matters, by shuffling it on the test split.
    spec = settings.get("feature_importance") or {}
    if test.x.ndim == 2 and spec.get("enabled", True):
        results["importance"] = importance.permutation(
            predict,
            test.x,
            test.y,
            feature_names,
            classification,
            n_repeats=int(spec.get("n_repeats", 5)),
            seed=seed,
        )
    if seed_groups and len(seed_groups) > 1:
        results["seeds"] = _over_seeds(
            seed_groups, test.y, float(settings.get("alpha", 0.05)), seed
        )
    results["metrics"].update(_summary_metrics(results))
    return results


# ---- classification ------------------------------------------------------------------------


def _classification(settings, val, test, y_train, seed, others) -> dict[str, Any]:
    num_classes = test.output.shape[1]
    val_probs, test_probs = softmax(val.output, axis=1), softmax(test.output, axis=1)
    n_bins = int(settings.get("n_bins", 15))
    flat: dict[str, float] = {}
    for split, (y, probs) in {"val": (val.y, val_probs), "test": (test.y, test_probs)}.items():
        flat.update(_prefixed(f"{split}/", metrics.classification_metrics(y, probs)))
    flat["test/ece"] = calibration.expected_calibration_error(test.y, test_probs, n_bins)
    results: dict[str, Any] = {
        "task": "classification",
        "num_classes": num_classes,
        "balance": thresholds.class_balance(
            {"train": y_train, "val": val.y, "test": test.y}, num_classes
        ),
        "confusion": metrics.confusion_matrix(test.y, test_probs),
        "test_probs": test_probs,  # for the ROC and precision-recall curves
        "reliability": {"model": calibration.reliability_bins(test.y, test_probs, n_bins)},
    }

    # Temperature scaling: fitted on validation logits, judged on the test split.
    usable_probs = test_probs
    if settings.get("temperature_scaling", True):
        temperature = calibration.fit_temperature(val.output, val.y)
        flat["temperature"] = temperature
        results["temperature_usable"] = calibration.temperature_is_usable(
            temperature, val.output, val.y
        )
        if results["temperature_usable"]:
            usable_probs = calibration.apply_temperature(test.output, temperature)
            flat["test/ece_calibrated"] = calibration.expected_calibration_error(
                test.y, usable_probs, n_bins
            )
            scaled = metrics.classification_metrics(test.y, usable_probs)
            flat["test/log_loss_calibrated"] = scaled["log_loss"]
            results["reliability"][f"temperature-scaled (T={temperature:.2f})"] = (
                calibration.reliability_bins(test.y, usable_probs, n_bins)
            )

    # Confidence: how many predictions stay usable at each confidence cut-off.
    curve = calibration.confidence_curve(test.y, usable_probs)
    target = float(settings.get("confidence", {}).get("target_accuracy", 0.99))
    found = calibration.threshold_for_accuracy(curve, target)
    results["confidence"] = {"curve": curve, "target_accuracy": target, "found": found}
    if found:
        flat["test/confidence_threshold"], flat["test/coverage_at_target"] = found

    if num_classes == 2:
        results["threshold"] = _binary_threshold(settings.get("threshold", {}), val, test, flat)
        results["test_p_positive"] = test_probs[:, 1]

    # Best and worst predictions: the lowest and highest loss of the true class.
    log_p = log_softmax(test.output.astype(np.float64), axis=1)
    loss = np.maximum(-log_p[np.arange(len(test.y)), test.y], 0.0)  # no -0.0 in the report
    results["examples"] = _examples(test, loss, test_probs, int(settings.get("examples", 8)))

    # Baselines and other models, compared row by row with this one.
    correct = test_probs.argmax(axis=1) == test.y
    alpha = float(settings.get("alpha", 0.05))
    rivals = dict(metrics.classification_baselines(y_train, len(test.y), num_classes, seed))
    rivals.update({name: softmax(out, axis=1) for name, out in others.items()})
    results["comparisons"] = {}
    for name, probs in rivals.items():
        scores = metrics.classification_metrics(test.y, probs)
        prefix = "baseline" if name in ("majority", "random") else "compare"
        flat.update(_prefixed(f"{prefix}/{name}/test/", _pick(scores, "accuracy", "f1_macro")))
        other_correct = probs.argmax(axis=1) == test.y
        results["comparisons"][name] = {
            "kind": prefix,
            "metrics": scores,
            **comparison.compare(
                correct.astype(float),
                other_correct.astype(float),
                correct,
                other_correct,
                alpha=alpha,
                seed=seed,
            ),
        }
    results["metrics"] = flat
    return results


def _binary_threshold(spec, val, test, flat) -> dict[str, Any]:
    """The decision threshold from the validation split, and the test metrics at it."""
    method = spec.get("method", "f1")
    p_val = softmax(val.output, axis=1)[:, 1]
    cost = spec.get("cost")
    if method == "f1":
        value = thresholds.threshold_by_f1(val.y, p_val)
    elif method == "cost":
        if cost is None:
            raise ValueError("evaluation.threshold.method=cost needs evaluation.threshold.cost")
        value, _ = thresholds.threshold_by_cost(val.y, p_val, cost)
    elif method == "fixed":
        value = float(spec.get("value", 0.5))
    else:
        raise ValueError(f"evaluation.threshold.method={method!r}: use f1, cost or fixed")
    probs = softmax(test.output, axis=1)
    at = metrics.classification_metrics(test.y, probs, threshold=value)
    keys = ("accuracy", "precision", "recall", "f1", "tpr", "tnr", "fpr", "fnr")
    flat["threshold"] = value
    flat.update(_prefixed("test/at_threshold/", _pick(at, *keys)))
    result = {"method": method, "value": value, "metrics": _pick(at, *keys)}
    if cost is not None:
        matrix = metrics.confusion_matrix(test.y, probs, threshold=value)
        default = metrics.confusion_matrix(test.y, probs)
        per_row = float(np.sum(matrix * np.asarray(cost)) / len(test.y))
        result["cost"] = {
            "at_threshold": per_row,
            "at_0.5": float(np.sum(default * cost)) / len(test.y),
        }
        flat["test/at_threshold/cost"] = per_row
    return result


# ---- regression ----------------------------------------------------------------------------


def _regression(settings, val, test, y_train, seed, others) -> dict[str, Any]:
    delta = float(settings.get("huber_delta", 1.0))
    flat: dict[str, float] = {}
    for split, data in {"val": val, "test": test}.items():
        flat.update(_prefixed(f"{split}/", metrics.regression_metrics(data.y, data.output, delta)))
    error = np.abs(np.ravel(test.output) - np.ravel(test.y))
    results: dict[str, Any] = {
        "task": "regression",
        "examples": _examples(test, error, None, int(settings.get("examples", 8))),
        "comparisons": {},
    }
    alpha = float(settings.get("alpha", 0.05))
    rivals = dict(metrics.regression_baselines(y_train, len(test.y), seed))
    rivals.update(others)
    for name, values in rivals.items():
        scores = metrics.regression_metrics(test.y, values, delta)
        prefix = "baseline" if name in ("mean", "random") else "compare"
        flat.update(_prefixed(f"{prefix}/{name}/test/", _pick(scores, "mae", "rmse", "r2")))
        other_error = np.abs(np.ravel(values) - np.ravel(test.y))
        # Scores where higher is better: the negative absolute error of each row.
        results["comparisons"][name] = {
            "kind": prefix,
            "metrics": scores,
            **comparison.compare(-error, -other_error, alpha=alpha, seed=seed),
        }
    results["metrics"] = flat
    return results


# ---- over seeds ----------------------------------------------------------------------------------


def headline(y_true: np.ndarray, output: np.ndarray) -> tuple[str, float]:
    """The one number runs are compared by: accuracy, or mean absolute error for regression."""
    if output.ndim == 2:
        probs = softmax(output, axis=1)
        return "accuracy", metrics.classification_metrics(y_true, probs)["accuracy"]
    return "mae", metrics.regression_metrics(y_true, output)["mae"]


def _over_seeds(groups, y_true, alpha, seed) -> dict[str, Any]:
    scores = {name: [headline(y_true, out)[1] for out in runs] for name, runs in groups.items()}
    name = headline(y_true, next(iter(groups.values()))[0])[0]
    return {
        "metric": name,
        "scores": scores,
        "comparisons": comparison.compare_groups(scores, name == "accuracy", alpha, seed),
    }


# ---- shared --------------------------------------------------------------------------------


def _behaviour(settings, test, predict_rows, names, seed, scaling=None) -> dict[str, Any]:
    rows, max_examples = test.x.reshape(len(test.x), -1), int(settings.get("examples", 8))
    ids = test.ids
    common = {"max_examples": max_examples, "scaling": scaling}
    return {
        "perturbations": [
            behaviour.perturbation_curve(predict_rows, rows, test.y, spec, names, seed)
            for spec in settings.get("perturbations", [])
        ],
        "invariances": [
            behaviour.invariance_test(predict_rows, rows, ids, spec, names, seed, **common)
            for spec in settings.get("invariances", [])
        ],
        "directional": [
            behaviour.directional_test(predict_rows, rows, ids, spec, names, seed, **common)
            for spec in settings.get("directional", [])
        ],
    }


def _examples(test: Split, loss: np.ndarray, probs: np.ndarray | None, k: int) -> dict:
    """The ``k`` rows with the lowest and the highest loss (or absolute error)."""
    order = np.argsort(loss, kind="stable")
    ids = test.ids

    def rows(indices: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for i in indices:
            row = {"index": int(i), "id": behaviour.plain(ids[i]), "loss": float(loss[i])}
            if probs is None:
                row["true"], row["predicted"] = float(test.y[i]), float(np.ravel(test.output)[i])
            else:
                row["true"], row["predicted"] = int(test.y[i]), int(probs[i].argmax())
                row["confidence"] = float(probs[i].max())
            out.append(row)
        return out

    return {"best": rows(order[:k]), "worst": rows(order[::-1][:k])}


def _summary_metrics(results: dict[str, Any]) -> dict[str, float]:
    flat = {}
    flagged = [row for row in results["slices"]["slices"] if row["flagged"]]
    if results["slices"]["slices"]:
        worst = results["slices"]["slices"][0]
        flat[f"slices/worst/{results['slices']['metric']}"] = worst["metric"]
    flat["slices/flagged"] = float(len(flagged))
    if "seeds" in results:
        for name, values in results["seeds"]["scores"].items():
            flat[f"seeds/{_name(name)}/mean_{results['seeds']['metric']}"] = float(np.mean(values))
    tests = results["behaviour"]
    for kind in ("invariances", "directional"):
        for test in tests[kind]:
            flat[f"behaviour/{kind}/{_name(test['name'])}/failure_rate"] = test["failure_rate"]
    for curve in tests["perturbations"]:
        metric = "accuracy" if "accuracy" in curve else "mae"
        for level, value in zip(curve["levels"], curve[metric], strict=True):
            flat[f"robustness/{_name(curve['name'])}/level_{level:g}/{metric}"] = value
    return flat


def _name(text: str) -> str:
    """A metric-name-safe version of a config name (MLflow allows letters, digits, ``_-. /``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _prefixed(prefix: str, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}{name}": value for name, value in values.items()}


def _pick(values: Mapping[str, float], *names: str) -> dict[str, float]:
    return {name: values[name] for name in names if name in values}
