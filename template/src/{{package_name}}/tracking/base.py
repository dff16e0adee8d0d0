"""The logger interface the trainer and the evaluator talk to, and the logger that records nothing.

The entry points build a logger from ``configs/logger/`` and hand it over; the tracker-specific
loggers (MLflow, TensorBoard, W&B, CSV; several at once: ``multi.py``) live in their own modules
here, so that nothing else ever imports a tracker.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import TrackingError  # raised here, and importable from here


class RunNotFoundError(TrackingError):
    """The run to continue (its id kept in a checkpoint) is not in this tracking store."""


def open_logger(config: Any, run_id: str | None, command: str) -> "Logger":
    """The logger ``config`` (``configs/logger/``) describes, continuing the run ``run_id``.

    A checkpoint keeps the id of its training run, in the store it was tracked to. When that run
    is not in this store (the checkpoint was trained with another one: ``make docker-train``
    tracks to ``outputs/mlflow.db``, a colleague's server, a copied checkpoint), the work is
    recorded in a new run of this store, tagged ``continues_run_id``, and a note says so and how
    to reach the original run instead. Any other failure of the store raises ``TrackingError``.
    """
    import sys

    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(config, **({"run_id": run_id} if run_id else {}))
    except InstantiationException as error:  # Hydra wraps the logger's own error
        cause = error.__cause__
        if not isinstance(cause, TrackingError):
            raise
        if not isinstance(cause, RunNotFoundError):
            raise cause from None
    logger = instantiate(config)
    logger.set_tags({"continues_run_id": run_id})
    from .run_info import mask_text

    print(
        f"{command}: note: {mask_text(str(cause))}, so this is recorded in a new run, "
        f"{logger.run_id} (tagged continues_run_id={run_id}). To add to the original run "
        "instead, point logger.tracking_uri at the store it was tracked to.",
        file=sys.stderr,
    )
    return logger


def keep_unsent_in(logger: "Logger", run_dir: Path) -> None:
    """What the tracker does not take (it went away mid-run) is kept in ``run_dir`` for later."""
    keep = getattr(logger, "keep_unsent_in", None)
    if keep is not None:
        keep(run_dir)


def rewind(logger: "Logger", step: int) -> None:
    """A training resumed from the checkpoint of ``step`` continues its run: a tracker that can
    (TensorBoard, CSV) forgets what the run logged after ``step``, which is logged again."""
    forget = getattr(logger, "rewind", None)
    if forget is not None:
        forget(step)


def check_sent(logger: "Logger") -> None:
    """``TrackingError`` (exit 6) if the tracker stopped answering during the run: the outputs
    are on disk, and the message says where the rest is kept and how to send it."""
    outage = getattr(logger, "outage", None)
    if outage:
        raise TrackingError(outage)


@runtime_checkable
class Logger(Protocol):
    """What the trainer, the evaluator and the search call, on rank 0 only.

    A logger is built from ``configs/logger/`` with ``run_id=`` (continue that run) or
    ``run_name=`` (name the new one); a logger that records nothing has no ``run_id``.
    Optional, looked up with ``getattr``: ``resumed`` (it continues a run), ``log_model_enabled``
    (false: ``log_model`` is never called), ``rewind(step)``, ``keep_unsent_in``, ``outage``.
    """

    #: The tracker's id of the run, kept in checkpoints so that a resumed run can continue it.
    run_id: str | None
    #: Whether checkpoints are uploaded to the tracker (they can be large).
    log_checkpoints: bool

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's configuration (a nested mapping) once, at the start."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record metric values at an optimizer step."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Label the run (resumed at step N, the git commit, ...)."""

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Keep a file or a folder with the run (a checkpoint, a chart, a report)."""

    def log_table(self, table: Any, artifact_file: str) -> None:
        """Keep a table (a pandas DataFrame) with the run: best and worst predictions."""

    def log_dataset(self, frame: Any, name: str, digest: str, source: str, context: str) -> None:
        """Record which data the run used: its name, version (digest) and where it lives."""

    def log_model(self, model: Any, input_example: Any) -> None:
        """Keep the trained model in a servable form, with an example input."""

    def finish(self, status: str = "FINISHED") -> None:
        """Close the run: ``FINISHED``, ``FAILED`` or ``KILLED``."""

    def child(self, run_name: str) -> "Logger":
        """A new run nested in this one, in the same store (a search's trial, under the search's
        run); a tracker that cannot nest runs opens a run of its own."""


class NullLogger:
    """Records nothing: ``logger=none``. Runs still write metrics.json and reports/."""

    log_checkpoints = False
    log_model_enabled = False  # nothing to build a servable model for

    def __init__(self, run_id: str | None = None, run_name: str | None = None) -> None:
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_table(self, table: Any, artifact_file: str) -> None:
        pass

    def log_dataset(self, frame: Any, name: str, digest: str, source: str, context: str) -> None:
        pass

    def log_model(self, model: Any, input_example: Any) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass

    def child(self, run_name: str) -> "NullLogger":
        return NullLogger()
