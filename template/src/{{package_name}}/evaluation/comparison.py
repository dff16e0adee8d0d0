"""Is model A better than model B, and by how much? Paired tests on the same rows or seeds.

- ``paired_ttest``: Student's paired t-test (scipy ``ttest_rel``) of per-seed or per-row scores,
  with Cohen's d_z (mean difference over its standard deviation) as the effect size;
- ``bootstrap_ci``: a bootstrap confidence interval (scipy ``bootstrap``) of the mean difference;
- ``mcnemar``: McNemar's exact test (scipy ``binomtest`` on the rows exactly one model gets
  right) for two classifiers on the same rows.

Over k-fold splits the folds overlap and the t-test is too optimistic (use Nadeau and Bengio's
correction: ``corrected_resampled_ttest``, ``corrected_interval``, what ``cv`` reports); with 5
seeds a Wilcoxon test cannot reach p < 0.0625.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats


def paired_ttest(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean of ``a - b``, the two-sided p-value and Cohen's d_z."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    spread = diff.std(ddof=1) if len(diff) > 1 else 0.0
    if spread == 0:
        # Identical differences: no evidence of a difference when they are all zero, and a
        # difference no noise explains otherwise (scipy returns NaN for both).
        same = bool(np.all(diff == 0))
        return {
            "mean_difference": float(diff.mean()) if len(diff) else 0.0,
            "p_value": 1.0 if same else 0.0,
            "effect_size": 0.0 if same else float(np.sign(diff.mean()) * np.inf),
        }
    result = stats.ttest_rel(a, b)
    return {
        "mean_difference": float(diff.mean()),
        "p_value": float(result.pvalue),
        "effect_size": float(diff.mean() / spread),
    }


def corrected_interval(
    values: Sequence[float], train_rows: float, test_rows: float, confidence: float = 0.95
) -> dict[str, float]:
    """The mean of per-fold scores with Nadeau and Bengio's corrected t-interval.

    The k folds' training sets overlap, so their scores are correlated and Student's s^2 / k
    understates the variance of their mean; Nadeau and Bengio (2003) correct it to
    s^2 * (1 / k + test_rows / train_rows), with k - 1 degrees of freedom. ``uncorrected_*``:
    the plain t-interval, for comparison (narrower, and too narrow).
    """
    x = np.asarray(values, dtype=np.float64)
    k, mean = len(x), float(np.mean(x))
    if k < 2:
        return {"mean": mean, "std": 0.0, "ci_low": mean, "ci_high": mean}
    std = float(x.std(ddof=1))
    quantile = float(stats.t.ppf(0.5 + confidence / 2, k - 1))
    half = quantile * std * np.sqrt(1 / k + test_rows / train_rows)
    plain = quantile * std / np.sqrt(k)
    return {
        "mean": mean,
        "std": std,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "uncorrected_ci_low": mean - plain,
        "uncorrected_ci_high": mean + plain,
    }


def corrected_resampled_ttest(
    a: Sequence[float],
    b: Sequence[float],
    train_rows: float,
    test_rows: float,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Nadeau and Bengio's corrected resampled t-test of paired per-fold scores ``a`` and ``b``.

    The statistic is mean(a - b) / sqrt(s^2 * (1 / k + test_rows / train_rows)) over the k
    folds' differences, two-sided, with k - 1 degrees of freedom (Nadeau and Bengio, 2003;
    Bouckaert and Frank, 2004): the correlation of the folds' overlapping training sets widens
    the variance. ``ci_*``: the interval of the mean difference at ``confidence``.
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    k = len(diff)
    mean = float(diff.mean()) if k else 0.0
    spread = float(diff.std(ddof=1)) if k > 1 else 0.0
    if spread == 0:  # as paired_ttest: no noise to weigh the difference against
        same = bool(np.all(diff == 0))
        return {
            "mean_difference": mean,
            "t": 0.0 if same else float(np.sign(mean) * np.inf),
            "df": max(k - 1, 0),
            "p_value": 1.0 if same else 0.0,
            "ci_low": mean,
            "ci_high": mean,
        }
    error = spread * np.sqrt(1 / k + test_rows / train_rows)
    t = mean / error
    half = float(stats.t.ppf(0.5 + confidence / 2, k - 1)) * error
    return {
        "mean_difference": mean,
        "t": float(t),
        "df": k - 1,
        "p_value": float(2 * stats.t.sf(abs(t), k - 1)),
        "ci_low": mean - half,
        "ci_high": mean + half,
    }


def bootstrap_ci(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The confidence interval of the mean of ``a - b`` (percentile bootstrap, paired rows)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if np.all(diff == diff[0]):
        return float(diff[0]), float(diff[0])  # every resample has the same mean
    result = stats.bootstrap(
        (diff,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """McNemar's exact test: ``a_only`` and ``b_only`` count the rows one model alone gets right."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(~correct_a & correct_b))
    discordant = a_only + b_only
    p_value = stats.binomtest(a_only, discordant, 0.5).pvalue if discordant else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(p_value)}


def compare(
    a: np.ndarray,
    b: np.ndarray,
    correct_a: np.ndarray | None = None,
    correct_b: np.ndarray | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything the report says about A versus B.

    ``a`` and ``b`` are paired scores where higher is better (per seed, or per row: accuracy,
    negative loss, negative absolute error); ``correct_*`` (classifiers, per row) add McNemar.
    The verdict uses McNemar when given, else the t-test.
    """
    out: dict[str, Any] = {"rows": len(a), **paired_ttest(a, b)}
    out["ci_low"], out["ci_high"] = bootstrap_ci(a, b, 1 - alpha, seed=seed)
    p_value = out["p_value"]
    if correct_a is not None and correct_b is not None:
        out["mcnemar"] = mcnemar(correct_a, correct_b)
        p_value = out["mcnemar"]["p_value"]
    out["significant"] = bool(p_value < alpha)
    return out


def compare_groups(
    groups: Mapping[str, Sequence[float]],
    higher_is_better: bool = True,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The first group of runs against each other one, paired by position (the same seed).

    ``groups`` maps a name to one test metric per run; ``mean_difference`` and the interval are
    first minus other, in the metric's units; ``better`` says whether the first group wins.
    """
    names = list(groups)
    first = np.asarray(groups[names[0]], dtype=np.float64)
    out = []
    for name in names[1:]:
        other = np.asarray(groups[name], dtype=np.float64)
        if len(other) != len(first):
            raise ValueError(
                f"compare_seeds: {names[0]} has {len(first)} runs and {name} {len(other)}; "
                "pair each run with the run of the same seed"
            )
        result = compare(first, other, alpha=alpha, seed=seed)
        diff = result["mean_difference"]
        out.append(
            {
                "first": names[0],
                "other": name,
                "runs": len(first),
                "first_mean": float(first.mean()),
                "other_mean": float(other.mean()),
                "better": bool(diff > 0 if higher_is_better else diff < 0),
                **result,
            }
        )
    return out
