"""What ``suite.run`` finds, as typed records: what ``report.py`` and its template show.

``Results`` holds every section; the sections a task's kind gets (``Task.kind``) are filled in,
the others are ``None``. ``metrics`` is the flat dict of numbers that ``metrics.json`` (DVC) and
the tracker get. Inner tables that a helper module computes and documents (class balance,
reliability bins, the confidence curve, prediction distributions) stay plain dicts, as that
module returns them.
"""

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are fields of ``cls``."""
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in values.items() if key in names}


@dataclass
class Comparison:
    """This model against another one on the same test rows (``comparison.compare``)."""

    name: str
    kind: str  # "baseline" or "compare"
    metrics: dict[str, float]  # the other model's test metrics
    mean_difference: float  # this model's per-row score minus the other's
    ci_low: float
    ci_high: float
    p_value: float  # of the verdict: McNemar's for classifiers, else the paired t-test's
    effect_size: float
    significant: bool

    @classmethod
    def of(cls, name: str, kind: str, metrics: dict[str, float], found: dict[str, Any]):
        p_value = found["mcnemar"]["p_value"] if "mcnemar" in found else found["p_value"]
        return cls(name, kind, metrics, **_known(cls, {**found, "p_value": p_value}))


@dataclass
class SeedComparison:
    """The first group of seeded runs against another (``comparison.compare_groups``)."""

    first: str
    other: str
    runs: int
    first_mean: float
    other_mean: float
    better: bool
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    effect_size: float
    significant: bool

    @classmethod
    def of(cls, found: dict[str, Any]) -> "SeedComparison":
        return cls(**_known(cls, found))


@dataclass
class Seeds:
    metric: str  # the task's main metric
    scores: dict[str, list[float]]  # per group, one test score per run
    comparisons: list[SeedComparison]


@dataclass
class Threshold:
    """A binary task's decision threshold, chosen on the validation split."""

    method: str  # f1, cost or fixed
    value: float
    metrics: dict[str, float]  # test metrics at the threshold
    cost: float | None = None  # mean cost per test row at the threshold, when costs are given
    cost_at_half: float | None = None  # ... and at 0.5


@dataclass
class Confidence:
    curve: dict[str, list[float]]  # calibration.confidence_curve
    target_accuracy: float
    found: tuple[float, float] | None  # (confidence threshold, coverage) reaching the target


@dataclass
class ClassificationSections:
    """What a classifier's report shows beyond every task's sections."""

    num_classes: int
    balance: dict[str, dict[str, Any]]  # thresholds.class_balance, per split
    confusion: np.ndarray
    test_probs: np.ndarray  # for the ROC and precision-recall curves
    reliability: dict[str, dict[str, Any]]  # per curve name: calibration.reliability_bins
    confidence: Confidence
    temperature_usable: bool = True
    threshold: Threshold | None = None  # binary tasks only


@dataclass
class Example:
    """One test row among the best or worst predictions."""

    index: int
    id: Any
    loss: float  # classifiers: the loss of the true class; regression: the absolute error
    true: int | float
    predicted: int | float
    confidence: float | None = None  # classifiers only
    text: str | None = None  # text tasks: the text, on one line and cut


@dataclass
class Examples:
    best: list[Example]
    worst: list[Example]


@dataclass
class SliceRow:
    slice: str
    rows: int
    metric: float
    gap: float  # against the whole split; negative is worse
    flagged: bool


@dataclass
class Slices:
    metric: str
    overall: float
    slices: list[SliceRow]

    @classmethod
    def of(cls, found: dict[str, Any]) -> "Slices":
        rows = [SliceRow(**row) for row in found["slices"]]
        return cls(found["metric"], found["overall"], rows)


@dataclass
class Curve:
    """The test metric at each level of one perturbation (``behaviour.perturbation_curve``)."""

    name: str
    kind: str
    levels: list[float]
    metric: str
    values: list[float]

    @classmethod
    def of(cls, found: dict[str, Any], metric: str) -> "Curve":
        """``metric``: the task's main metric, the key of the curve's values."""
        return cls(found["name"], found["kind"], found["levels"], metric, found[metric])


@dataclass
class BehaviourTest:
    """An invariance or directional test (``behaviour.invariance_test``/``directional_test``)."""

    name: str
    change: str
    output: str  # what the numbers in ``examples`` are
    failure_rate: float
    failures: int
    rows: int
    examples: list[dict[str, Any]]  # failing rows: id, before, after

    @classmethod
    def of(cls, found: dict[str, Any]) -> "BehaviourTest":
        return cls(**{"change": "", "output": "", **_known(cls, found)})


@dataclass
class Behaviour:
    perturbations: list[Curve] = field(default_factory=list)
    invariances: list[BehaviourTest] = field(default_factory=list)
    directional: list[BehaviourTest] = field(default_factory=list)


@dataclass
class FeatureImportance:
    feature: str
    importance: float
    std: float


@dataclass
class Importance:
    """Permutation importance on the test split (``importance.permutation``), most first."""

    metric: str
    baseline: float
    n_repeats: int
    features: list[FeatureImportance]

    @classmethod
    def of(cls, found: dict[str, Any]) -> "Importance":
        features = [FeatureImportance(**row) for row in found["features"]]
        return cls(found["metric"], found["baseline"], found["n_repeats"], features)


@dataclass
class Results:
    """The whole evaluation of one model."""

    kind: str  # the task's kind (Task.kind): which sections are filled in
    main_metric: str  # the task's main metric: the summary's and the comparisons' number
    metrics: dict[str, float]  # flat: metrics.json
    comparisons: list[Comparison]
    examples: Examples
    slices: Slices | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)  # per split
    importance: Importance | None = None
    seeds: Seeds | None = None
    classification: ClassificationSections | None = None
    images: bool = False  # the task's inputs are images (Task.images): the report draws some
    text: bool = False  # the task's inputs are texts (Task.text): the report quotes some
    # The int8 copy against the float model (quantization.Quantization; None: not asked for).
    quantization: Any = None
    # The gate to the model registry and what it did (gate.Decision; None: not enabled).
    registry: Any = None
