"""The project's errors, and the one wrapper that turns them into a message and an exit code.

Every command (train, evaluate, predict, export, tune, data.prepare, data.validate) runs inside
``reported`` (``config.entry_point`` puts it there): an error the user can fix ends the command
with ``<command>: error: <one paragraph>`` on stderr and its exit code, never a traceback. The
codes are the same for every command:

- 0 success
- 1 another error the user can fix (``ProjectError``)
- 2 bad config: a setting, an override, a folder, the search (``ConfigError``, ``SearchError``,
  a config that cannot be instantiated)
- 3 a missing or unusable checkpoint, or a resume that cannot be exact (``CheckpointError``)
- 4 a non-finite loss or weights (``NonFiniteLossError``)
- 5 missing or invalid data or input (``DataValidationError``, ``FileNotFoundError``)
- 6 the tracking store cannot be used (``TrackingError``)
- 7 ``monitor``: recent inputs drifted from the training data (``DriftError``)
- 128 + N stopped by signal N (``Interrupted``; training saves a checkpoint first)

The foundation of the package's layers (``tests/test_layers.py``): it imports nothing of the
package but ``masking``, so that every layer can raise these.
"""

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, NoReturn


class ProjectError(Exception):
    """A failure the user can fix: the command prints the message and exits with exit_code."""

    exit_code = 1


class TrainingError(ProjectError):
    """A run cannot go on (config, checkpoint, loss); ``tune`` fails the trial and goes on."""

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


class SearchError(ProjectError):
    """The hyperparameter search itself is misconfigured (not one trial's config)."""

    exit_code = 2


class DataValidationError(ProjectError):
    """Data or input fails its checks, or cannot be read; the message is the report."""

    exit_code = 5
    # The failing checks (data/checks.py's Failure), set where a caller answers them as a table
    # (batch.py, for the HTTP service); absent otherwise.
    failures: list[Any]


class DriftError(ProjectError):
    """``monitor``: recent inputs drifted from the training data; the message is the report."""

    exit_code = 7


class TrackingError(ProjectError, RuntimeError):
    """The tracking store cannot be used; the message names the URI and what to do."""

    exit_code = 6


class Interrupted(ProjectError):
    """The command stopped on signal ``signum`` (after saving what it could): 128 + signum."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class JobFailed(Exception):
    """A job of a sweep (``train -m ...``) ended with ``exit_code``; its message is printed.

    Not a ``SystemExit``, which would end the whole sweep: Hydra records the job as failed and
    runs the next one, then the command exits with the first failed job's code
    (``config.entry_point``; ``docs/how-to/multirun.md``).
    """

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"the job exited with code {exit_code}")
        self.exit_code = exit_code


def fail(command: str, message: str, code: int) -> NoReturn:
    """Print ``<command>: error: <message>`` and exit with ``code``.

    The paragraph is one line, never hard-wrapped: a wrap at a fixed width splits a path or the
    words around it at a place that depends on the path's length, so the message could not be
    searched for (or grepped by a test) reliably. Terminals wrap long lines themselves. A table
    that follows the first line (failing data checks) is printed as it is. Secrets in it (a
    password in a URL, ``api_token=...``) are masked (``masking.py``).
    """
    from .masking import mask_text

    print(f"{command}: error: {mask_text(message)}", file=sys.stderr)
    raise SystemExit(code)


@contextlib.contextmanager
def reported(
    command: str,
    data_says: str = "the data cannot be used: ",
    data_errors: tuple[type[Exception], ...] = (),
) -> Iterator[None]:
    """Run a command's body; end an error the user can fix with its message and exit code.

    ``data_says`` begins the message of a data error (``predict``: "the input cannot be used: ");
    ``data_errors`` are more exception types that mean bad data for this command (``prepare``:
    ``ValueError``, which pandas and the source readers raise). Anything else is a bug and keeps
    its traceback.
    """
    from hydra.errors import InstantiationException

    bad_data: tuple[type[Exception], ...] = (DataValidationError, FileNotFoundError, *data_errors)
    try:
        yield
    except Interrupted as stopped:  # its message is the whole story: how to resume
        print(stopped, file=sys.stderr)
        raise SystemExit(stopped.exit_code) from None
    except TrackingError as error:
        fail(command, str(error), error.exit_code)
    except bad_data as error:
        fail(command, f"{data_says}{error}", DataValidationError.exit_code)
    except ProjectError as error:
        fail(command, str(error), error.exit_code)
    except InstantiationException as error:  # Hydra wraps the error of the object it builds
        if isinstance(error.__cause__, ProjectError):
            fail(command, str(error.__cause__), error.__cause__.exit_code)
        fail(command, f"a config cannot be instantiated: {error}", ConfigError.exit_code)
