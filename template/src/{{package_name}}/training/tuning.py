"""Hyperparameter search with Optuna over the Hydra config (``python -m <package>.tune``).

Each trial samples values for the Hydra keys of ``hparams_search.params``, composes the config
with them as overrides and trains in this process with ``trainer.fit``. Every validation reports
the metric to Optuna, whose pruner may stop a trial that is clearly worse than the others. The
study lives in a relational database (a sqlite file by default, any SQLAlchemy URL for several
workers), so a killed search resumes with the same command and several processes can share it.
Trials that fail (a non-finite loss, an impossible config) are recorded as failed and the search
goes on. With a tracking logger (one whose runs have an id: MLflow), the search is a parent run
and each trial a child run (``Logger.child``); the best parameters, the best value and Optuna's
charts go to the parent and to ``hparams_search.output_dir``. The study, its storage and which
trials count are in ``study.py``.
"""

import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.trial import TrialState

from ..errors import SearchError, TrainingError
from ..tracking.base import keep_unsent_in
from ..tracking.run_info import mask_text
from .study import COUNTED, count, counted, open_study, retried_trial_number, stop_at
from .trainer import fit

__all__ = ["TRIAL_ERRORS", "SearchError", "retried_trial_number", "search", "suggest", "summarise"]

log = logging.getLogger(__name__)

#: Failures of one trial that do not stop the search (the trial is recorded as FAIL).
TRIAL_ERRORS: tuple[type[Exception], ...] = (TrainingError, torch.cuda.OutOfMemoryError)


Compose = Callable[[Sequence[str]], DictConfig]


def search(cfg: DictConfig, compose: Compose) -> optuna.Study:
    """Run ``cfg.hparams_search`` until the study holds ``n_trials`` finished trials.

    ``compose(overrides)`` returns the full config with these Hydra overrides on top of the
    command line's (the entry point composes with Hydra; tests compose with ``config.compose``).
    """
    spec = cfg.hparams_search
    metric, direction = str(spec.metric), str(spec.direction)
    if not metric.startswith("val/"):
        raise SearchError(
            f"hparams_search.metric must be a validation metric (val/...), got {metric!r}: "
            "trials are compared and pruned on what each validation reports."
        )
    if direction not in ("minimize", "maximize"):
        raise SearchError(
            f"hparams_search.direction must be minimize or maximize, got {direction!r}."
        )
    space = _space(spec.params)
    output_dir = Path(spec.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(spec)
    # A trial whose worker died (SIGKILL, a lost machine) stays RUNNING; with a heartbeat it is
    # failed here once its beats stop, and retried (enqueued again with the same parameters).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # nothing without a heartbeat
    done = counted(study)
    remaining = int(spec.n_trials) - done
    for params in spec.get("enqueue") or []:  # known good points first (the defaults, say)
        study.enqueue_trial(dict(params), skip_if_exists=True)

    parent = _open_parent(cfg, study)
    base = [str(o) for o in spec.get("trial_overrides") or []]
    status = "FAILED"
    try:
        if remaining > 0:
            log.info("study %s: %d trials stored, running %d", study.study_name, done, remaining)
            study.optimize(
                _objective(spec, space, base, compose, output_dir, parent),
                n_trials=remaining,
                catch=TRIAL_ERRORS,
                callbacks=[stop_at(int(spec.n_trials)), _report_to(parent)],
            )
        status = "FINISHED"
    finally:
        try:
            summarise(study, output_dir, parent, plots=bool(spec.get("plots", True)))
        finally:
            if parent is not None:
                parent.finish(status)
    return study


# ---- the search space ---------------------------------------------------------------------------


def _space(params: DictConfig | None) -> dict[str, dict[str, Any]]:
    """``hparams_search.params``: Hydra key -> {type: float|int|categorical, ...}."""
    container = OmegaConf.to_container(params, resolve=True) if params else {}
    if not isinstance(container, dict) or not container:
        raise SearchError("hparams_search.params is empty: declare at least one Hydra key.")
    space: dict[str, dict[str, Any]] = {}
    for key, dist in container.items():
        name = str(key)  # Hydra keys: text
        kind = dist.get("type") if isinstance(dist, dict) else None
        needed = {"float": {"low", "high"}, "int": {"low", "high"}, "categorical": {"choices"}}
        if not isinstance(dist, dict) or kind not in needed or not needed[kind] <= set(dist):
            raise SearchError(
                f"hparams_search.params.{name} must be "
                "{type: float|int, low, high[, log, step]} or {type: categorical, choices: [...]}"
                f", got {dist!r}."
            )
        space[name] = dist
    return space


def suggest(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The trial's value for each key; list choices (layer sizes) are kept as override text."""
    values: dict[str, Any] = {}
    for key, dist in space.items():
        kind = dist["type"]
        if kind == "categorical":
            choices = [
                override_value(c) if isinstance(c, list | dict) else c for c in dist["choices"]
            ]
            values[key] = trial.suggest_categorical(key, choices)
        elif kind == "float":
            low, high, log = float(dist["low"]), float(dist["high"]), bool(dist.get("log", False))
            values[key] = trial.suggest_float(key, low, high, step=dist.get("step"), log=log)
        else:
            # suggest_int takes no step=None: an int without a step counts by 1.
            low_i, high_i, log = int(dist["low"]), int(dist["high"]), bool(dist.get("log", False))
            values[key] = trial.suggest_int(key, low_i, high_i, step=dist.get("step", 1), log=log)
    return values


def override_value(value: Any) -> str:
    """``value`` in Hydra's override syntax: [128,64], {a:1}, null, true, 0.001."""
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# ---- one trial ----------------------------------------------------------------------------------


def _objective(
    spec: DictConfig,
    space: Mapping[str, Mapping[str, Any]],
    base: Sequence[str],
    compose: Compose,
    output_dir: Path,
    parent: Any,
) -> Callable[[optuna.Trial], float]:
    metric = str(spec.metric)
    maximize = str(spec.direction) == "maximize"

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, space)
        overrides = [*base, *(f"{key}={override_value(v)}" for key, v in values.items())]
        trial.set_user_attr("overrides", overrides)
        try:
            cfg = compose(overrides)
        except (HydraException, OmegaConfBaseException) as error:  # a key the config lacks
            raise SearchError(
                f"a trial's overrides {overrides} cannot be composed: {error}. Check the keys "
                "of hparams_search.params and hparams_search.trial_overrides."
            ) from None
        trial_dir = output_dir / f"trial-{trial.number}"
        trial.set_user_attr("output_dir", str(trial_dir))
        reported: list[float] = []

        def on_validation(step: int, metrics: dict[str, float]) -> None:
            if metric not in metrics:
                raise SearchError(
                    f"hparams_search.metric={metric!r} is not a validation metric; choose one of "
                    f"{sorted(metrics)}."
                )
            value = float(metrics[metric])
            # The validation's index, not the optimizer step: trials with other batch sizes
            # take other numbers of steps per epoch, and the pruner compares equal indices.
            trial.report(value, len(reported))
            reported.append(value)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at validation {len(reported)} (step {step}): {metric}={value:.4g}"
                )

        child = _open_child(parent, trial.number, values, trial_dir)
        status = "FAILED"
        try:
            metrics = fit(cfg, trial_dir, child, on_validation=on_validation)
            status = "FINISHED"
        except optuna.TrialPruned:
            status = "KILLED"
            raise
        except TRIAL_ERRORS as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            log.warning("trial %d failed: %s", trial.number, error)
            raise
        finally:
            if child is not None:
                child.finish(status)
        finite = [v for v in reported if math.isfinite(v)]
        if finite:  # the best validation of the trial: what its best.pt holds
            return max(finite) if maximize else min(finite)
        if metric not in metrics:
            raise SearchError(f"hparams_search.metric={metric!r} was never reported.")
        return float(metrics[metric])

    return objective


# ---- tracking -----------------------------------------------------------------------------------


def _open_parent(cfg: DictConfig, study: optuna.Study) -> Any:
    """The search's own run, reopened when this study already has one in this tracking store;
    None when the logger records nothing (no run id: ``logger=none``)."""
    if "logger" not in cfg:
        return None
    # Kept in the study's storage: the URI without its password (masking.py).
    key = f"tracking_run:{mask_text(str(cfg.logger.get('tracking_uri')))}"
    run_id = study.user_attrs.get(key)
    kwargs = {"run_id": run_id} if run_id else {"run_name": f"search-{study.study_name}"}
    parent = instantiate(cfg.logger, **kwargs)
    if parent.run_id is None:
        return None
    keep_unsent_in(parent, Path(cfg.hparams_search.output_dir))
    if not run_id:
        study.set_user_attr(key, parent.run_id)
    parent.log_params({"hparams_search": OmegaConf.to_container(cfg.hparams_search, resolve=True)})
    parent.set_tags(
        {
            "optuna.study_name": study.study_name,
            "optuna.direction": study.direction.name.lower(),
            "optuna.metric": str(cfg.hparams_search.metric),
        }
    )
    return parent


def _open_child(parent: Any, number: int, values: Mapping[str, Any], trial_dir: Path) -> Any:
    """The trial's run, nested in the search's (``Logger.child``); none without a parent."""
    if parent is None:
        return None
    child = parent.child(f"trial-{number}")
    keep_unsent_in(child, trial_dir)  # if the tracker goes away mid-trial (tracking.resend)
    child.set_tags({"optuna.trial": number, **{f"optuna.param.{k}": v for k, v in values.items()}})
    return child


def _report_to(parent: Any) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if parent is None or trial.state != TrialState.COMPLETE or trial.value is None:
            return
        parent.log_metrics(
            {"trial/value": trial.value, "best_value": study.best_value}, step=trial.number
        )

    return callback


# ---- the outcome --------------------------------------------------------------------------------


def summarise(study: optuna.Study, output_dir: Path, parent: Any, plots: bool = True) -> dict:
    """best.json (and charts) in ``output_dir``, and the same in the parent run if any."""
    states = {s.name: count(study, (s,)) for s in (*COUNTED, TrialState.RUNNING)}
    summary: dict[str, Any] = {"study_name": study.study_name, "trials": states}
    complete = count(study, (TrialState.COMPLETE,))
    if complete:
        best = study.best_trial
        summary.update(
            best_value=best.value,
            best_params=best.params,
            best_trial=best.number,
            best_overrides=best.user_attrs.get("overrides", []),
        )
    (output_dir / "best.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    charts = write_plots(study, output_dir) if plots and complete else []
    if parent is not None:
        if complete:
            parent.log_metrics(
                {"best_value": float(summary["best_value"])}, step=study.best_trial.number
            )
            parent.set_tags({f"best.{k}": v for k, v in summary["best_params"].items()})
        parent.set_tags({f"trials.{k.lower()}": v for k, v in states.items()})
        parent.log_artifact(output_dir / "best.json", "tuning")
        for chart in charts:
            parent.log_artifact(chart, "tuning")
    return summary


def write_plots(study: optuna.Study, output_dir: Path) -> list[Path]:
    """Optuna's optimisation history, parallel coordinates and slices as static PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from optuna.visualization import matplotlib as charts

    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)  # "categorical units"
    written = []
    for name, draw in (
        ("optimization_history", charts.plot_optimization_history),
        ("parallel_coordinate", charts.plot_parallel_coordinate),
        ("slice", charts.plot_slice),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" warnings, too few trials
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as error:
                log.warning("no %s chart: %s", name, error)
                continue
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        figure = first.figure
        assert isinstance(figure, Figure)  # optuna draws on a figure of its own, not a subfigure
        path = output_dir / f"{name}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written
