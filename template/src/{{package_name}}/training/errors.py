"""The errors that stop training with a message and an exit code, instead of a traceback."""

import sys
import textwrap


def fail(command: str, message: str, code: int) -> None:
    """Print ``<command>: error: <message>`` as one wrapped paragraph and exit with ``code``.

    Only the first line is wrapped: a table that follows it (failing data checks) stays as it is.
    """
    first, _, rest = message.partition("\n")
    text = textwrap.fill(f"{command}: error: {first}", width=100, break_long_words=False)
    print(text + (f"\n{rest}" if rest else ""), file=sys.stderr)
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
