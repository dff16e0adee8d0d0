"""The errors that stop training with a message and an exit code, instead of a traceback."""

import sys


def fail(command: str, message: str, code: int) -> None:
    """Print ``<command>: error: <message>`` and exit with ``code``.

    The paragraph is one line, never hard-wrapped: a wrap at a fixed width splits a path or the
    words around it at a place that depends on the path's length, so the message could not be
    searched for (or grepped by a test) reliably. Terminals wrap long lines themselves. A table
    that follows the first line (failing data checks) is printed as it is. Secrets in it (a
    password in a URL, ``api_token=...``) are masked (``tracking/run_info.py``).
    """
    from ..tracking.run_info import mask_text

    print(f"{command}: error: {mask_text(message)}", file=sys.stderr)
    raise SystemExit(code)


class TrainingError(Exception):
    """A failure the user can fix; the entry point prints the message and exits with exit_code."""

    exit_code = 1


class ConfigError(TrainingError):
    """The configuration asks for something impossible or inconsistent."""

    exit_code = 2


class CheckpointError(TrainingError):
    """A checkpoint is missing, unreadable, or cannot resume this run exactly."""

    exit_code = 3


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite."""

    exit_code = 4
