"""The logger interface the trainer talks to, and the logger that records nothing.

The trainer receives any object with these three methods; the tracker-specific loggers (MLflow)
live in their own modules here, so that the trainer never imports a tracker.
"""

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Logger(Protocol):
    """What the trainer calls, on rank 0 only."""

    #: The tracker's id of the run, kept in checkpoints so that a resumed run can continue it.
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's configuration (a flat mapping) once, at the start."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record metric values at an optimizer step."""

    def finish(self, status: str = "FINISHED") -> None:
        """Close the run: ``FINISHED``, ``FAILED`` or ``KILLED``."""


class NullLogger:
    """Records nothing: the default (`logger=none`)."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass
