"""PLACEHOLDER, replaced by helper D's serving/monitoring.py at the merge (issue 21).

The monitoring contract the service calls (docs: how-to monitor): ``monitored_values`` turns a
request's inputs into the values summarised per key, ``RequestLog`` writes one JSON line of
summaries per window. This stand-in has the same signatures and writes nothing.
"""

from pathlib import Path

import numpy as np


def monitored_values(
    metadata: dict, inputs: np.ndarray, texts: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Placeholder: nothing to summarise."""
    return {}


class RequestLog:
    """Placeholder: records nothing; ``close`` leaves an empty log file where one was asked."""

    def __init__(
        self,
        path: str | Path | None,
        metadata: dict,
        every_s: float = 60.0,
        every_requests: int = 1000,
    ) -> None:
        self.path = None if path is None else Path(path)

    def record(
        self,
        *,
        status: int,
        latency_ms: float,
        rows: int = 0,
        values: dict[str, np.ndarray] | None = None,
        predictions: np.ndarray | None = None,
    ) -> None:
        pass

    def close(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
