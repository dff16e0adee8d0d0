"""k-fold cross-validation (``python -m <package>.cv``): k models, one per fold, and what they say.

The rows of the processed training split are dealt into ``cv.folds`` folds (``data/folds.py``:
stratified for classification). Fold i trains with the project's own ``trainer.fit``, exactly as
``train`` would, on a processed folder of its own (``<output>/fold-i/data``: the other folds as
its training split, with the feature scaling or the tokenizer fitted on them alone, the
validation split for early stopping and the best checkpoint, and fold i as its test split);
its checkpoints, curves and ``metrics.json`` stay in ``<output>/fold-i/``. The trainer's test
metrics of the best checkpoint are the fold's scores on its held-out rows.

The task's trivial baseline is scored on the same held-out rows: the most frequent class of the
fold's training rows (classification) or their mean target (regression). The summary
(``cv.json``, ``cv.md`` in the output folder) holds every fold's metrics, each metric's mean with
Nadeau and Bengio's corrected t-interval over the folds, and their corrected resampled t-test of
the model against the baseline on the task's main metric (``evaluation/comparison.py``). With a
tracking logger (MLflow), the cross-validation is one run with a nested run per fold.

Orchestration, as the search is (``tests/test_layers.py``): it trains fold after fold and
measures with evaluation's tests, so it sits above both.
"""

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .. import tasks
from ..config import as_dict
from ..data.folds import fold_indices, read_training_rows, target_column, write_fold
from ..data.record import require_validated
from ..errors import ConfigError, Interrupted, TrackingError
from ..evaluation.comparison import corrected_interval, corrected_resampled_ttest
from ..tracking.base import check_sent, keep_unsent_in
from ..tracking.run_info import flatten
from . import distributed
from .trainer import fit

__all__ = ["baseline_scores", "cross_validate", "summarise"]

CV_FILE, CV_REPORT = "cv.json", "cv.md"
INTERVAL = "Nadeau-Bengio corrected t-interval over the folds (k - 1 degrees of freedom)"
TEST = "Nadeau-Bengio corrected resampled t-test (two-sided, k - 1 degrees of freedom)"


def cross_validate(cfg: DictConfig, output_dir: Path, data_md5: str) -> dict[str, Any]:
    """Train and score ``cfg.cv.folds`` folds in ``output_dir``; returns the summary, also
    written to ``output_dir/cv.json`` and ``cv.md`` (and to the tracker, as a parent run)."""
    ctx = distributed.setup(cfg.trainer.accelerator)
    if ctx.world_size > 1:
        raise ConfigError(
            "cv trains its folds one after another in one process: run it with python -m, "
            "not under torchrun."
        )
    task = tasks.for_data(cfg.data)
    train, val = read_training_rows(cfg)
    target = target_column(cfg.data)
    labels = train[target].to_numpy() if task.kind == "classification" else None
    folds = fold_indices(labels, len(train), int(cfg.cv.folds), int(cfg.cv.seed))
    output_dir.mkdir(parents=True, exist_ok=True)
    parent = _open_parent(cfg, output_dir, data_md5)
    status = "FAILED"
    try:
        results = []
        for number, held_out in enumerate(folds):
            results.append(
                _run_fold(cfg, output_dir, number, train, val, held_out, data_md5, parent, ctx)
            )
        summary = summarise(results, task, cfg, data_md5, len(train))
        write_summary(summary, output_dir)
        if parent is not None:
            _record_summary(parent, summary, output_dir)
        status = "FINISHED"
    except (KeyboardInterrupt, Interrupted):
        status = "KILLED"
        raise
    except TrackingError:
        parent = None  # the tracker is gone: nothing more to tell it
        raise
    finally:
        if parent is not None:
            parent.finish(status)
    if parent is not None:
        check_sent(parent)  # exit 6 if the tracker went away: what it missed is kept
    return summary


def _run_fold(
    cfg: DictConfig, output_dir: Path, number: int, train: Any, val: Any,
    held_out: np.ndarray, data_md5: str, parent: Any, ctx: distributed.Context,
) -> dict[str, Any]:  # fmt: skip
    """Fold ``number``: its data, its training run (a nested run of ``parent``), its scores and
    the baseline's on its held-out rows."""
    folder = output_dir / f"fold-{number}"
    rows = write_fold(cfg, folder / "data", train, val, held_out, data_md5)
    fold_cfg = fold_config(cfg, folder)
    require_validated(fold_cfg)  # what train would require of it: the fold's own record
    child = None
    if parent is not None:
        child = parent.child(f"fold-{number}")
        keep_unsent_in(child, folder)
        child.set_tags({"cv.fold": number, "cv.folds": int(cfg.cv.folds), **rows})
    status = "FAILED"
    try:
        metrics = fit(fold_cfg, folder, child, ctx)
        status = "FINISHED"
    except (KeyboardInterrupt, Interrupted):
        status = "KILLED"
        raise
    finally:
        if child is not None:
            child.finish(status)
    if child is not None:
        check_sent(child)
    target = target_column(cfg.data)
    mask = np.zeros(len(train), dtype=bool)
    mask[held_out] = True
    baseline = baseline_scores(
        tasks.for_data(cfg.data).kind,
        train[target].to_numpy()[~mask],
        train[target].to_numpy()[mask],
    )
    scores = {k: float(v) for k, v in metrics.items() if k.startswith("test/")}
    main = f"test/{tasks.for_data(cfg.data).main_metric}"
    print(
        f"cv: fold {number + 1}/{int(cfg.cv.folds)}: {main}={scores.get(main, math.nan):.4g} "
        f"(baseline {baseline[main]:.4g}) on {rows['test_rows']} held-out rows"
    )
    return {
        "fold": number,
        "output_dir": str(folder),
        **rows,
        "run_id": getattr(child, "run_id", None),
        "metrics": scores,
        "baseline": baseline,
    }


def fold_config(cfg: DictConfig, folder: Path) -> DictConfig:
    """``cfg`` for one fold: its processed data and folder, a new run scored on its test split
    (the held-out fold) with the best checkpoint."""
    fold = copy.deepcopy(cfg)  # the command's config stays as it is
    fold.paths.processed_dir = str(folder / "data")
    fold.paths.output_dir = str(folder)
    fold.trainer.test_after_fit = True
    fold.ckpt_path = None
    return fold


def baseline_scores(kind: str, train_targets: np.ndarray, held_out: np.ndarray) -> dict[str, float]:
    """The trivial baseline's test metrics on ``held_out``, fitted on ``train_targets``: the most
    frequent class (the smallest on a tie), or the mean target (MAE, MSE and R^2 as the
    regression task computes them)."""
    if kind == "classification":
        majority = int(np.bincount(np.asarray(train_targets, dtype=np.int64)).argmax())
        return {"test/accuracy": float(np.mean(np.asarray(held_out) == majority))}
    truth = np.asarray(held_out, dtype=np.float64)
    error = truth - float(np.mean(np.asarray(train_targets, dtype=np.float64)))
    total = float(np.sum((truth - truth.mean()) ** 2))
    return {
        "test/mae": float(np.mean(np.abs(error))),
        "test/mse": float(np.mean(error**2)),
        "test/r2": 1.0 - float(np.sum(error**2)) / total if total > 0 else math.nan,
    }


def summarise(
    results: list[dict[str, Any]], task: Any, cfg: DictConfig, data_md5: str, rows: int
) -> dict[str, Any]:
    """The per-fold results, each metric's mean with its interval, and the test against the
    baseline on the task's main metric."""
    confidence = 1 - float(cfg.cv.alpha)
    train_rows = float(np.mean([r["train_rows"] for r in results]))
    test_rows = float(np.mean([r["test_rows"] for r in results]))

    def interval(name: str, values: list[float]) -> dict[str, float]:
        return within_range(name, corrected_interval(values, train_rows, test_rows, confidence))

    names = sorted(set.intersection(*(set(r["metrics"]) for r in results)))
    main = f"test/{task.main_metric}"
    if main not in names:
        raise ConfigError(
            f"the folds' runs report no {main} (their test metrics: {names}): cv scores each "
            "fold on its held-out rows with the trainer's test metrics."
        )
    model = [r["metrics"][main] for r in results]
    baseline = [r["baseline"][main] for r in results]
    test = corrected_resampled_ttest(model, baseline, train_rows, test_rows, confidence)
    difference = test["mean_difference"]
    return {
        "folds": len(results),
        "seed": int(cfg.cv.seed),
        "alpha": float(cfg.cv.alpha),
        "confidence": confidence,
        "data": {
            "processed_dir": str(cfg.paths.processed_dir),
            "md5": data_md5,
            "split": "train",
            "rows": rows,
            "stratified": task.kind == "classification",
        },
        "metric": main,
        "higher_is_better": bool(task.higher_is_better),
        "interval": INTERVAL,
        "per_fold": results,
        "mean": {name: interval(name, [r["metrics"][name] for r in results]) for name in names},
        "baseline": {
            "name": "majority class" if task.kind == "classification" else "mean target",
            "mean": {
                name: interval(name, [r["baseline"][name] for r in results])
                for name in results[0]["baseline"]
            },
        },
        "comparison": {
            "test": TEST,
            "metric": main,
            "model_mean": float(np.mean(model)),
            "baseline_mean": float(np.mean(baseline)),
            **test,
            "better": bool(difference > 0 if task.higher_is_better else difference < 0),
            "significant": bool(test["p_value"] < float(cfg.cv.alpha)),
        },
    }


#: The values a metric can take: an interval is cut at them (a t-interval around a mean
#: accuracy of 0.98 may reach past 1; no accuracy does).
RANGES = {"accuracy": (0.0, 1.0), "loss": (0.0, math.inf), "mae": (0.0, math.inf)}
RANGES |= {"mse": (0.0, math.inf), "r2": (-math.inf, 1.0)}


def within_range(name: str, interval: dict[str, float]) -> dict[str, float]:
    """``interval``'s bounds cut to the range of the metric ``name`` (``test/accuracy``)."""
    low, high = RANGES.get(name.rsplit("/", 1)[-1], (-math.inf, math.inf))
    return {
        key: min(max(value, low), high) if key.endswith(("_low", "_high")) else value
        for key, value in interval.items()
    }


def write_summary(summary: dict[str, Any], output_dir: Path) -> None:
    """``cv.json`` (everything) and ``cv.md`` (the tables a person reads)."""
    (output_dir / CV_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (output_dir / CV_REPORT).write_text(report(summary), encoding="utf-8")


def report(summary: dict[str, Any]) -> str:
    """``cv.md``: per fold, the means with their intervals, and the verdict."""
    main, level = summary["metric"], f"{summary['confidence']:.0%}"
    comparison, baseline, data = summary["comparison"], summary["baseline"], summary["data"]
    lines = [
        f"# {summary['folds']}-fold cross-validation",
        "",
        f"{data['rows']} rows of the training split ({data['processed_dir']}, md5 "
        f"{data['md5']}), dealt into {summary['folds']} folds"
        f"{' stratified by class' if data['stratified'] else ''} (cv.seed="
        f"{summary['seed']}); each fold trained on the others and scored on its own rows.",
        "",
        f"| fold | training rows | held-out rows | {main} | baseline ({baseline['name']}) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for fold in summary["per_fold"]:
        lines.append(
            f"| {fold['fold']} | {fold['train_rows']} | {fold['test_rows']} | "
            f"{fold['metrics'][main]:.4f} | {fold['baseline'][main]:.4f} |"
        )
    lines += [
        "",
        f"Means with their {level} interval ({summary['interval']}):",
        "",
        "| metric | mean | std | interval |",
        "|---|---:|---:|---|",
    ]
    for name, value in summary["mean"].items():
        lines.append(
            f"| {name} | {value['mean']:.4f} | {value['std']:.4f} | "
            f"[{value['ci_low']:.4f}, {value['ci_high']:.4f}] |"
        )
    for name, value in baseline["mean"].items():
        lines.append(
            f"| {name} (baseline) | {value['mean']:.4f} | {value['std']:.4f} | "
            f"[{value['ci_low']:.4f}, {value['ci_high']:.4f}] |"
        )
    verdict = "better than" if comparison["better"] else "not better than"
    significance = "significant" if comparison["significant"] else "not significant"
    lines += [
        "",
        f"Against the baseline ({comparison['test']}): {main} differs by "
        f"{comparison['mean_difference']:+.4f} (model minus baseline, {level} interval "
        f"[{comparison['ci_low']:+.4f}, {comparison['ci_high']:+.4f}]), t = {comparison['t']:.3f}, "
        f"p = {comparison['p_value']:.3g}: {verdict} the baseline, {significance} at "
        f"alpha = {summary['alpha']}.",
        "",
    ]
    return "\n".join(lines)


# ---- tracking -----------------------------------------------------------------------------------


def _open_parent(cfg: DictConfig, output_dir: Path, data_md5: str) -> Any:
    """The cross-validation's own run; None when the logger records nothing (no run id)."""
    if "logger" not in cfg:
        return None
    settings = cfg.logger
    if "run_name" in settings and not settings.get("run_name"):
        settings = OmegaConf.merge(settings, {"run_name": f"cv-{int(cfg.cv.folds)}-folds"})
    parent = instantiate(settings)
    if getattr(parent, "run_id", None) is None:
        return None
    keep_unsent_in(parent, output_dir)
    parent.log_params(flatten(as_dict(cfg, resolve=True)))
    parent.set_tags(
        {"cv.folds": int(cfg.cv.folds), "cv.seed": int(cfg.cv.seed), "data.md5": data_md5}
    )
    return parent


def _record_summary(parent: Any, summary: dict[str, Any], output_dir: Path) -> None:
    """The means, their intervals and the test in the parent run; cv.json and cv.md with it."""
    metrics: dict[str, float] = {}
    for name, value in summary["mean"].items():
        key = name.removeprefix("test/")
        metrics |= {
            f"cv/{key}_mean": value["mean"],
            f"cv/{key}_ci_low": value["ci_low"],
            f"cv/{key}_ci_high": value["ci_high"],
        }
    comparison = summary["comparison"]
    key = comparison["metric"].removeprefix("test/")
    metrics |= {
        f"cv/baseline_{key}_mean": comparison["baseline_mean"],
        "cv/baseline_difference": comparison["mean_difference"],
        "cv/baseline_p_value": comparison["p_value"],
    }
    parent.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)}, step=0)
    parent.set_tags({"cv.significant": str(comparison["significant"]).lower()})
    parent.log_artifact(output_dir / CV_FILE, "cv")
    parent.log_artifact(output_dir / CV_REPORT, "cv")
