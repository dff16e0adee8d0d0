"""The whole evaluation of one model on arrays: what ``evaluate`` runs and the report shows.

It needs no checkpoint and no files: the task (``tasks/``), the model's outputs on the validation
and test splits as ``Task.for_evaluation`` gives them (logits for classification, values for
regression), a ``predict`` function for the behavioural tests, and the settings of
``configs/evaluation/``. The validation split is used only to fit what the test split is then
judged with (the decision threshold, the temperature). The task's kind (``Task.kind``) picks the
kind-specific sections (``SECTIONS``); the results are typed (``results.py``).
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax, softmax

from ..tasks import Task
from . import (
    behaviour,
    calibration,
    comparison,
    distributions,
    importance,
    metrics,
    slices,
    text_behaviour,
    thresholds,
)
from .results import (
    Behaviour,
    BehaviourTest,
    ClassificationSections,
    Comparison,
    Confidence,
    Curve,
    Example,
    Examples,
    Importance,
    Results,
    SeedComparison,
    Seeds,
    Slices,
    Threshold,
)


@dataclass
class Split:
    """One split: model inputs, true targets, the model's outputs, and columns for slicing
    (the features in raw units: ``slices.in_raw_units``); for text, the raw ``texts`` too (the
    behavioural tests edit them, the report shows them)."""

    x: np.ndarray
    y: np.ndarray
    output: np.ndarray
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    texts: list[str] | None = None

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
    *,
    task: Task,
    predict_texts: Callable[[Sequence[str]], np.ndarray] | None = None,
    train_texts: Sequence[str] | None = None,
) -> Results:
    """Every result: ``metrics`` (flat, for metrics.json) and one field per section.

    ``predict`` maps inputs shaped like ``test.x`` to outputs; ``others`` holds other models'
    outputs on the test split, to compare with row by row; ``seed_groups`` holds, per named
    configuration, the test outputs of its runs over several seeds (paired by position);
    ``scaling`` is the features' scaling (the checkpoint's ``feature_scale``), so that the
    behavioural tests say what they change in raw units.

    Text tasks (``Task.text``): the behavioural tests edit ``test.texts`` and call
    ``predict_texts`` (raw texts to outputs, tokenized with the checkpoint's tokenizer) instead
    of ``predict``; with ``train_texts`` the comparisons include a bag-of-words baseline.
    """
    if task.kind not in SECTIONS:
        raise ValueError(
            f"the evaluation suite has no sections for tasks of kind {task.kind!r} (it knows "
            f"{sorted(SECTIONS)}): add them to evaluation/suite.py's SECTIONS"
        )
    shape = test.x.shape[1:]

    def predict_rows(rows: np.ndarray) -> np.ndarray:
        return predict(rows.reshape(-1, *shape))

    baselines = {}
    spec = settings.get("bag_of_words") or {}
    if task.text and train_texts is not None and spec.get("enabled", True):
        baselines["bag_of_words"] = metrics.bag_of_words_baseline(
            list(train_texts),
            y_train,
            list(test.texts or []),
            test.output.shape[1],
            **{k: v for k, v in spec.items() if k != "enabled"},
        )
    results = SECTIONS[task.kind](settings, val, test, y_train, seed, others or {}, baselines)
    results.main_metric, results.images = task.main_metric, task.images
    results.text = task.text
    results.slices = Slices.of(
        slices.evaluate_slices(
            test.frame,
            test.y,
            test.output,
            settings.get("slices", {}).get("specs", []),
            flag_worst=int(settings.get("slices", {}).get("flag_worst", 3)),
            min_rows=int(settings.get("slices", {}).get("min_rows", 10)),
            task=task,
        )
    )
    if task.text:
        results.behaviour = _text_behaviour(settings, test, predict_texts, seed, task)
    else:
        results.behaviour = _behaviour(
            settings, test, predict_rows, feature_names, seed, scaling, task
        )
    # What the model predicts on each split (classes and confidence, or values).
    results.distributions = distributions.of_splits(
        {
            name: (split.y, ANSWERS[task.kind](split.output))
            for name, split in (("val", val), ("test", test))
        },
        task.kind,
    )
    # Tabular data: how much each feature matters, by shuffling it on the test split.
    spec = settings.get("feature_importance") or {}
    if not (task.images or task.text) and spec.get("enabled", True):
        results.importance = Importance.of(
            importance.permutation(
                predict,
                test.x,
                test.y,
                feature_names,
                n_repeats=int(spec.get("n_repeats", 5)),
                seed=seed,
                task=task,
            )
        )
    if seed_groups and len(seed_groups) > 1:
        alpha = float(settings.get("alpha", 0.05))
        results.seeds = _over_seeds(seed_groups, test.y, alpha, seed, task)
    results.metrics.update(_summary_metrics(results))
    return results


# ---- classification ------------------------------------------------------------------------


def _classification(settings, val, test, y_train, seed, others, baselines=None) -> Results:
    num_classes = test.output.shape[1]
    val_probs, test_probs = softmax(val.output, axis=1), softmax(test.output, axis=1)
    n_bins = int(settings.get("n_bins", 15))
    flat: dict[str, float] = {}
    for split, (y, probs) in {"val": (val.y, val_probs), "test": (test.y, test_probs)}.items():
        flat.update(_prefixed(f"{split}/", metrics.classification_metrics(y, probs)))
    flat["test/ece"] = calibration.expected_calibration_error(test.y, test_probs, n_bins)
    reliability = {"model": calibration.reliability_bins(test.y, test_probs, n_bins)}

    # Temperature scaling: fitted on validation logits, judged on the test split.
    usable_probs, usable = test_probs, True
    if settings.get("temperature_scaling", True):
        temperature = calibration.fit_temperature(val.output, val.y)
        flat["temperature"] = temperature
        usable = calibration.temperature_is_usable(temperature, val.output, val.y)
        if usable:
            usable_probs = calibration.apply_temperature(test.output, temperature)
            flat["test/ece_calibrated"] = calibration.expected_calibration_error(
                test.y, usable_probs, n_bins
            )
            scaled = metrics.classification_metrics(test.y, usable_probs)
            flat["test/log_loss_calibrated"] = scaled["log_loss"]
            reliability[f"temperature-scaled (T={temperature:.2f})"] = calibration.reliability_bins(
                test.y, usable_probs, n_bins
            )

    # Confidence: how many predictions stay usable at each confidence cut-off.
    curve = calibration.confidence_curve(test.y, usable_probs)
    target = float(settings.get("confidence", {}).get("target_accuracy", 0.99))
    found = calibration.threshold_for_accuracy(curve, target)
    if found:
        flat["test/confidence_threshold"], flat["test/coverage_at_target"] = found
    sections = ClassificationSections(
        num_classes=num_classes,
        balance=thresholds.class_balance(
            {"train": y_train, "val": val.y, "test": test.y}, num_classes
        ),
        confusion=metrics.confusion_matrix(test.y, test_probs),
        test_probs=test_probs,
        reliability=reliability,
        confidence=Confidence(curve, target, found),
        temperature_usable=usable,
    )
    if num_classes == 2:
        sections.threshold = _binary_threshold(settings.get("threshold", {}), val, test, flat)

    # Best and worst predictions: the lowest and highest loss of the true class.
    log_p = log_softmax(test.output.astype(np.float64), axis=1)
    loss = np.maximum(-log_p[np.arange(len(test.y)), test.y], 0.0)  # no -0.0 in the report
    examples = _examples(test, loss, test_probs, int(settings.get("examples", 8)))

    # Baselines and other models, compared row by row with this one.
    correct = test_probs.argmax(axis=1) == test.y
    alpha = float(settings.get("alpha", 0.05))
    rivals = dict(metrics.classification_baselines(y_train, len(test.y), num_classes, seed))
    rivals.update(baselines or {})  # probabilities, as the two above (text: bag of words)
    rivals.update({name: softmax(out, axis=1) for name, out in others.items()})
    comparisons = []
    for name, probs in rivals.items():
        scores = metrics.classification_metrics(test.y, probs)
        prefix = "baseline" if name in ("majority", "random", *(baselines or {})) else "compare"
        flat.update(_prefixed(f"{prefix}/{name}/test/", _pick(scores, "accuracy", "f1_macro")))
        other_correct = probs.argmax(axis=1) == test.y
        compared = comparison.compare(
            correct.astype(float),
            other_correct.astype(float),
            correct,
            other_correct,
            alpha=alpha,
            seed=seed,
        )
        comparisons.append(Comparison.of(name, prefix, scores, compared))
    return Results(
        "classification", "accuracy", flat, comparisons, examples, classification=sections
    )


def _binary_threshold(spec, val, test, flat) -> Threshold:
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
    result = Threshold(method, value, _pick(at, *keys))
    if cost is not None:
        matrix = metrics.confusion_matrix(test.y, probs, threshold=value)
        default = metrics.confusion_matrix(test.y, probs)
        result.cost = float(np.sum(matrix * np.asarray(cost)) / len(test.y))
        result.cost_at_half = float(np.sum(default * cost)) / len(test.y)
        flat["test/at_threshold/cost"] = result.cost
    return result


# ---- regression ----------------------------------------------------------------------------


def _regression(settings, val, test, y_train, seed, others, baselines=None) -> Results:
    delta = float(settings.get("huber_delta", 1.0))
    flat: dict[str, float] = {}
    for split, data in {"val": val, "test": test}.items():
        flat.update(_prefixed(f"{split}/", metrics.regression_metrics(data.y, data.output, delta)))
    error = np.abs(np.ravel(test.output) - np.ravel(test.y))
    examples = _examples(test, error, None, int(settings.get("examples", 8)))
    alpha = float(settings.get("alpha", 0.05))
    rivals = dict(metrics.regression_baselines(y_train, len(test.y), seed))
    rivals.update(baselines or {})
    rivals.update(others)
    comparisons = []
    for name, values in rivals.items():
        scores = metrics.regression_metrics(test.y, values, delta)
        prefix = "baseline" if name in ("mean", "random", *(baselines or {})) else "compare"
        flat.update(_prefixed(f"{prefix}/{name}/test/", _pick(scores, "mae", "rmse", "r2")))
        other_error = np.abs(np.ravel(values) - np.ravel(test.y))
        # Scores where higher is better: the negative absolute error of each row.
        found = comparison.compare(-error, -other_error, alpha=alpha, seed=seed)
        comparisons.append(Comparison.of(name, prefix, scores, found))
    return Results("regression", "mae", flat, comparisons, examples)


#: Per kind of task (``Task.kind``): the sections only it gets (a ``Results`` with the metrics,
#: comparisons and examples filled in), and how its outputs become answers (class probabilities
#: from logits, or the values themselves) and metrics. A new kind of task adds an entry to each.
SECTIONS: dict[str, Callable[..., Results]] = {
    "classification": _classification,
    "regression": _regression,
}
ANSWERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "classification": lambda output: softmax(output, axis=1),
    "regression": lambda output: output,
}
SCORES: dict[str, Callable[[np.ndarray, np.ndarray], dict[str, float]]] = {
    "classification": metrics.classification_metrics,
    "regression": metrics.regression_metrics,
}


# ---- over seeds ----------------------------------------------------------------------------------


def headline(task: Task, y_true: np.ndarray, output: np.ndarray) -> float:
    """The one number runs are compared by: the task's main metric (accuracy, or MAE)."""
    return SCORES[task.kind](y_true, ANSWERS[task.kind](output))[task.main_metric]


def _over_seeds(groups, y_true, alpha, seed, task: Task) -> Seeds:
    scores = {name: [headline(task, y_true, out) for out in runs] for name, runs in groups.items()}
    found = comparison.compare_groups(scores, task.higher_is_better, alpha, seed)
    return Seeds(task.main_metric, scores, [SeedComparison.of(c) for c in found])


# ---- shared --------------------------------------------------------------------------------


def _behaviour(settings, test, predict_rows, names, seed, scaling, task: Task) -> Behaviour:
    rows, max_examples = test.x.reshape(len(test.x), -1), int(settings.get("examples", 8))
    ids = test.ids
    common = {"max_examples": max_examples, "scaling": scaling, "task": task}
    return Behaviour(
        perturbations=[
            Curve.of(
                behaviour.perturbation_curve(
                    predict_rows, rows, test.y, spec, names, seed, task=task
                ),
                task.main_metric,
            )
            for spec in settings.get("perturbations", [])
        ],
        invariances=[
            BehaviourTest.of(
                behaviour.invariance_test(predict_rows, rows, ids, spec, names, seed, **common)
            )
            for spec in settings.get("invariances", [])
        ],
        directional=[
            BehaviourTest.of(
                behaviour.directional_test(predict_rows, rows, ids, spec, names, seed, **common)
            )
            for spec in settings.get("directional", [])
        ],
    )


def _text_behaviour(settings, test, predict_texts, seed, task: Task) -> Behaviour:
    """The behavioural tests of a text task: edits of the raw texts (``text_behaviour.py``)."""
    if predict_texts is None or test.texts is None:
        raise ValueError("a text task's behavioural tests need the test texts and predict_texts")
    texts, ids, max_examples = test.texts, test.ids, int(settings.get("examples", 8))
    return Behaviour(
        perturbations=[
            Curve.of(
                text_behaviour.perturbation_curve(
                    predict_texts, texts, test.y, spec, seed, task=task
                ),
                task.main_metric,
            )
            for spec in settings.get("perturbations", [])
        ],
        invariances=[
            BehaviourTest.of(
                text_behaviour.invariance_test(
                    predict_texts, texts, ids, spec, seed, max_examples, task=task
                )
            )
            for spec in settings.get("invariances", [])
        ],
        directional=[
            BehaviourTest.of(
                text_behaviour.directional_test(
                    predict_texts,
                    texts,
                    ids,
                    spec,
                    seed,
                    max_examples,
                    settings.get("class_names"),
                    task=task,
                )
            )
            for spec in settings.get("directional", [])
        ],
    )


def _examples(test: Split, loss: np.ndarray, probs: np.ndarray | None, k: int) -> Examples:
    """The ``k`` rows with the lowest and the highest loss (or absolute error); for text, with
    the text (one line, cut: ``text_behaviour.snippet``)."""
    order = np.argsort(loss, kind="stable")
    ids = test.ids

    def rows(indices: np.ndarray) -> list[Example]:
        out = []
        for i in indices:
            row = Example(int(i), behaviour.plain(ids[i]), float(loss[i]), 0, 0)
            if probs is None:
                row.true, row.predicted = float(test.y[i]), float(np.ravel(test.output)[i])
            else:
                row.true, row.predicted = int(test.y[i]), int(probs[i].argmax())
                row.confidence = float(probs[i].max())
            if test.texts is not None:
                row.text = text_behaviour.snippet(test.texts[i])
            out.append(row)
        return out

    return Examples(best=rows(order[:k]), worst=rows(order[::-1][:k]))


def _summary_metrics(results: Results) -> dict[str, float]:
    flat = {}
    found = results.slices
    if found is not None:  # run() always slices; a Results is made before it does
        if found.slices:
            flat[f"slices/worst/{found.metric}"] = found.slices[0].metric
        flat["slices/flagged"] = float(sum(row.flagged for row in found.slices))
    if results.seeds is not None:
        for name, values in results.seeds.scores.items():
            flat[f"seeds/{_name(name)}/mean_{results.seeds.metric}"] = float(np.mean(values))
    tests = results.behaviour
    for kind, found_tests in (
        ("invariances", tests.invariances),
        ("directional", tests.directional),
    ):
        for test in found_tests:
            flat[f"behaviour/{kind}/{_name(test.name)}/failure_rate"] = test.failure_rate
    for curve in tests.perturbations:
        for level, value in zip(curve.levels, curve.values, strict=True):
            flat[f"robustness/{_name(curve.name)}/level_{level:g}/{curve.metric}"] = value
    return flat


def _name(text: str) -> str:
    """A metric-name-safe version of a config name (MLflow allows letters, digits, ``_-. /``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _prefixed(prefix: str, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}{name}": value for name, value in values.items()}


def _pick(values: Mapping[str, float], *names: str) -> dict[str, float]:
    return {name: values[name] for name in names if name in values}
