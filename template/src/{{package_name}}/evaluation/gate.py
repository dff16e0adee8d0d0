"""The gate to the model registry: may this evaluation's model become the champion?

It passes when the metric ``evaluation.registry.metric`` reaches ``required`` (``>=`` to
maximize, ``<=`` to minimize) AND, when a version holds the alias now, the model is
significantly better than that version on the same test rows, at ``evaluation.alpha``:
McNemar's exact test on the rows exactly one of the two classifies correctly, or (regression) a
paired t-test of the per-row absolute errors (``comparison.py``; both two-sided, and the
difference must favour the new model). A tie or a worse model fails.

Plain numbers in, a ``Decision`` out: no tracker here (``tracking/registry.py`` acts on it).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import comparison


@dataclass
class Champion:
    """The version holding the alias now, and its outputs on this evaluation's test rows
    (None, with ``problem`` saying why, when they could not be computed)."""

    version: str
    outputs: np.ndarray | None = None
    problem: str | None = None


@dataclass
class Decision:
    """What the gate decided, and why (``reasons``, in words, in the order they were checked)."""

    passed: bool
    metric: str
    value: float
    required: float
    direction: str
    alpha: float
    reasons: list[str] = field(default_factory=list)
    champion_version: str | None = None  # the version holding the alias when it was decided
    test: str | None = None  # "McNemar" or "paired t-test": how the champion was compared
    p_value: float | None = None
    wins: int | None = None  # classification: rows only the new model gets right
    losses: int | None = None  # ... and rows only the champion gets right
    mean_difference: float | None = None  # regression: champion's MAE minus the new model's
    # What the registry did with it (evaluate fills these in, also without a registry):
    registered_version: str | None = None
    action: str = ""

    def metrics(self) -> dict[str, float]:
        """The decision as metrics (metrics.json, the run): ``registry/passed`` and, when the
        champion was compared, ``registry/p_value``; ``registry/version`` once registered."""
        out = {"registry/passed": float(self.passed)}
        if self.p_value is not None:
            out["registry/p_value"] = float(self.p_value)
        if self.registered_version is not None:
            out["registry/version"] = float(self.registered_version)
        return out

    def tags(self) -> dict[str, str]:
        """The decision as run tags: ``registry.decision`` and the versions."""
        if self.registered_version is not None:
            decision = "registered"
        else:
            decision = "passed, not registered" if self.passed else "refused"
        tags = {"registry.decision": decision, "registry.reasons": "; ".join(self.reasons)}
        if self.registered_version is not None:
            tags["registry.version"] = self.registered_version
        if self.champion_version is not None:
            tags["registry.champion_version"] = self.champion_version
        return tags


def reaches(value: float, required: float, direction: str) -> bool:
    """Whether ``value`` reaches ``required`` (NaN never does)."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
    return bool(value >= required if direction == "maximize" else value <= required)


def decide(
    metrics: Mapping[str, float],
    outputs: np.ndarray,
    targets: np.ndarray,
    kind: str,
    settings: Mapping[str, Any],
    alpha: float,
    champion: Champion | None = None,
    champion_known: bool = True,
) -> Decision:
    """The gate's decision for a model whose test ``outputs`` (logits or values, one row per
    test row) score ``metrics`` against ``targets``.

    ``kind``: ``classification`` or ``regression`` (``Task.kind``); ``settings``:
    ``evaluation.registry``; ``champion``: the version holding the alias, None when there is
    none; ``champion_known=False``: no registry was asked (no MLflow logger), so only the
    threshold is decided.
    """
    name, direction = str(settings["metric"]), str(settings["direction"])
    required = float(settings["required"])
    if name not in metrics:
        known = ", ".join(sorted(k for k in metrics if k.startswith("test/")))
        raise KeyError(
            f"evaluation.registry.metric={name} is not a metric of this evaluation "
            f"(test metrics: {known})"
        )
    value = float(metrics[name])
    decision = Decision(False, name, value, required, direction, float(alpha))
    if not reaches(value, required, direction):
        sign = "<" if direction == "maximize" else ">"
        if not np.isfinite(value):
            sign = "is not a number, required"
        decision.reasons.append(f"{name} {value:.4g} {sign} {required:.4g} required")
        if champion is not None:
            decision.champion_version = champion.version
            decision.reasons.append(f"not compared with version {champion.version}")
        return decision
    sign = ">=" if direction == "maximize" else "<="
    decision.reasons.append(f"{name} {value:.4g} {sign} {required:.4g}")
    if not champion_known:
        decision.passed = True
        decision.reasons.append("not compared with a champion (no model registry)")
        return decision
    if champion is None:
        decision.passed = True
        decision.reasons.append("no version holds the alias yet: the first champion")
        return decision
    decision.champion_version = champion.version
    if champion.outputs is None:
        decision.reasons.append(
            f"cannot be compared with version {champion.version}: {champion.problem}"
        )
        return decision
    better = _compare(
        decision,
        np.asarray(outputs),
        np.asarray(targets),
        np.asarray(champion.outputs),
        kind,
        alpha,
    )
    decision.passed = better
    return decision


def _compare(
    decision: Decision,
    outputs: np.ndarray,
    targets: np.ndarray,
    champion: np.ndarray,
    kind: str,
    alpha: float,
) -> bool:
    """Fill in the comparison with the champion; whether the new model is significantly better."""
    version = decision.champion_version
    if champion.shape != outputs.shape:
        decision.reasons.append(
            f"cannot be compared with version {version}: its outputs have shape "
            f"{champion.shape}, this model's {outputs.shape} (another task or data?)"
        )
        return False
    if kind == "classification":
        correct = outputs.argmax(axis=1) == targets
        correct_champion = champion.argmax(axis=1) == targets
        found = comparison.mcnemar(correct, correct_champion)
        decision.test, decision.p_value = "McNemar", found["p_value"]
        decision.wins, decision.losses = int(found["a_only"]), int(found["b_only"])
        better = found["p_value"] < alpha and found["a_only"] > found["b_only"]
        detail = (
            f"McNemar p={found['p_value']:.3g}, {found['a_only']} vs {found['b_only']} rows "
            "only one of the two gets right"
        )
    else:
        error = np.abs(np.ravel(outputs) - np.ravel(targets))
        error_champion = np.abs(np.ravel(champion) - np.ravel(targets))
        found = comparison.paired_ttest(-error, -error_champion)
        decision.test, decision.p_value = "paired t-test", found["p_value"]
        decision.mean_difference = found["mean_difference"]  # champion's error minus ours
        better = found["p_value"] < alpha and found["mean_difference"] > 0
        detail = (
            f"paired t-test on absolute errors p={found['p_value']:.3g}, mean absolute error "
            f"{error.mean():.4g} vs {error_champion.mean():.4g}"
        )
    if better:
        decision.reasons.append(f"better than version {version}: {detail}")
    else:
        verdict = "not significantly better than" if found["p_value"] >= alpha else "worse than"
        decision.reasons.append(f"{verdict} version {version} (alpha={alpha:g}): {detail}")
    return bool(better)
