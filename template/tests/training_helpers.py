"""A logger for the tests that start training processes: it sends a signal at a given step.

Used as ``logger._target_=training_helpers.SignalAtStep +logger.step=5 +logger.signal=SIGKILL``
with ``tests/`` on PYTHONPATH: a deterministic way to crash or preempt a run mid-epoch.
"""

import os
import signal as signals
from collections.abc import Mapping
from typing import Any


class SignalAtStep:
    """Records nothing; after logging ``step``, sends ``signal`` to this process or its parent."""

    def __init__(self, step: int, signal: str = "SIGKILL", target: str = "self") -> None:
        self.run_id: str | None = None
        self.step = step
        self.signal = getattr(signals, signal)
        self.target = target
        self.sent = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if step >= self.step and not self.sent:
            self.sent = True
            os.kill(os.getppid() if self.target == "parent" else os.getpid(), self.signal)

    def finish(self, status: str = "FINISHED") -> None:
        pass
