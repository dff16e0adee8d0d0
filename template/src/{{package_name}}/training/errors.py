"""The errors that stop training with a message and an exit code, instead of a traceback."""


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
