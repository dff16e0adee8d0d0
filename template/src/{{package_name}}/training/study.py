"""The search's Optuna study: its storage (a database several workers share), the sampler and
pruner from the config, and which trials count toward ``hparams_search.n_trials``.

Split from ``tuning.py``, which runs the search; a stale trial of a killed worker is retried here
(``make_storage``'s heartbeat). See ``docs/tuning.md``.
"""

import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig
from optuna.study import StudyDirection
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from ..config import as_dict
from ..errors import SearchError

#: The trials that count toward ``n_trials`` (with those running elsewhere, less the failed ones
#: that are retried): a resumed search runs only the rest.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def open_study(spec: DictConfig) -> optuna.Study:
    """The study ``spec.study_name`` in ``spec.storage``, created or reopened."""
    sampler_cfg = as_dict(spec.sampler, resolve=True) if spec.sampler else None
    pruner_cfg = as_dict(spec.pruner, resolve=True) if spec.pruner else None
    storage = make_storage(
        spec.storage, spec.get("heartbeat_interval"), int(spec.get("max_retry") or 0)
    )
    existing = _stored_trials(storage, str(spec.study_name))
    sampler = None
    if sampler_cfg:
        if sampler_cfg.get("seed") is not None:  # a resumed search must not repeat itself
            sampler_cfg["seed"] = int(sampler_cfg["seed"]) + existing
        sampler = build(sampler_cfg, "hparams_search.sampler")
    pruner = (
        build(pruner_cfg, "hparams_search.pruner") if pruner_cfg else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        study_name=str(spec.study_name),
        direction=StudyDirection[str(spec.direction).upper()],  # settings: minimize or maximize
        load_if_exists=True,
    )


def make_storage(url: str | None, heartbeat_interval: int | None = None, max_retry: int = 0) -> Any:
    """An RDB storage for ``url`` (None: in memory, nothing kept). A sqlite file gets its folder
    and a long lock timeout (several processes write to it). With a heartbeat, the trial of a
    killed process is marked FAIL after two missed beats instead of staying RUNNING, and run
    again with the same parameters, up to ``max_retry`` times (Optuna's
    ``RetryHeartbeatStaleTrialCallback``); a trial that fails by itself (a NaN loss) is not."""
    if url is None:
        return None
    url = str(url)
    engine: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}}
    beat = int(heartbeat_interval) if heartbeat_interval else None
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=beat,
                    grace_period=2 * beat if beat else None,
                    **_retry_stale(max_retry if beat else 0),
                )
        except (ImportError, ValueError) as error:
            raise SearchError(f"hparams_search.storage={url!r} cannot be opened: {error}") from None
        except SQLAlchemyError as error:
            # Workers that start together race to create the tables: the losers try again and
            # find them made. An unreachable server fails every attempt.
            if attempt == 4:
                raise SearchError(
                    f"hparams_search.storage={url!r} cannot be opened: {error}"
                ) from None
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


# Optuna 4.9 renamed the retry of a stale trial (the old names warn, and go in 6.0).
RETRY_STALE = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)


def _retry_stale(max_retry: int) -> dict[str, Any]:
    """RDBStorage's argument that runs a stale trial again, up to ``max_retry`` times."""
    if not max_retry:
        return {}
    if RETRY_STALE is not None:
        return {"heartbeat_stale_trial_callback": RETRY_STALE(max_retry=max_retry)}
    retry = optuna.storages.RetryFailedTrialCallback(max_retry=max_retry)
    return {"failed_trial_callback": retry}


def retried_trial_number(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the stale trial that ``trial`` runs again (None: it is no retry)."""
    retry = RETRY_STALE or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return retry.retried_trial_number(trial)


def count(study: optuna.Study, states: Sequence[TrialState]) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def counted(study: optuna.Study) -> int:
    """The trials toward ``n_trials``: finished, failed or running, but not a failed trial that
    is retried (its retry counts instead, once it runs)."""
    trials = study.get_trials(deepcopy=False)
    retried = {retried_trial_number(t) for t in trials} - {None}
    states = (*COUNTED, TrialState.RUNNING)
    return sum(1 for t in trials if t.state in states and t.number not in retried)


def stop_at(n_trials: int) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Stop this worker once the study holds ``n_trials`` counted trials (``counted``)."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if counted(study) >= n_trials:
            study.stop()

    return callback


def _stored_trials(storage: Any, name: str) -> int:
    if storage is None:
        return 0
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def build(node: Mapping[str, Any], name: str) -> Any:
    try:
        return instantiate(node)
    except Exception as error:
        raise SearchError(f"{name} cannot be instantiated: {error}") from None
