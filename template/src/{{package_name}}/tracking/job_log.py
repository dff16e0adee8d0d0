"""A run's log file holds what its console showed.

Hydra writes the ``logging`` records of a job to ``<run folder>/<command>.log``; what the code
prints (``done: ...``, the progress bar's last state, warnings, error messages) would reach the
console only. ``JobLog``, a Hydra callback (``configs/hydra/default.yaml``), copies standard
output and standard error into that file for the length of the job. Every process of a torchrun
job runs its own callback: ranks that share a run folder append to the same log.

Secrets stay on the machine: Hydra saves the config (``.hydra/config.yaml``, ``hydra.yaml``,
``overrides.yaml``) before any callback runs, so ``JobLog`` rewrites those files with their
secrets masked as the job starts, and masks what it copies (``tracking/run_info.py`` says what
a secret is: a password in a URL, the value of a key named like a token or password).
"""

import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .run_info import mask_config, mask_text

HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def mask_saved_config(config: DictConfig) -> None:
    """Hydra's saved copies of this job's config, rewritten with their secrets masked."""
    output_dir = OmegaConf.select(config, "hydra.runtime.output_dir")
    subdir = OmegaConf.select(config, "hydra.output_subdir")
    if output_dir and subdir is not None:
        for name in HYDRA_FILES:
            mask_yaml_file(Path(str(output_dir)) / str(subdir) / name)
    if str(OmegaConf.select(config, "hydra.mode")) == "RunMode.MULTIRUN":
        mask_yaml_file(Path(str(OmegaConf.select(config, "hydra.sweep.dir"))) / "multirun.yaml")


def mask_yaml_file(path: Path) -> None:
    """Rewrite a YAML file of Hydra's with its secrets masked (untouched when it holds none)."""
    if not path.is_file():
        return
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    masked = mask_config(saved)
    if masked == saved:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # ranks may share the folder
    partial.write_text(OmegaConf.to_yaml(OmegaConf.create(masked)), encoding="utf-8")
    partial.replace(path)


class MaskSecrets(logging.Filter):
    """A handler's filter that masks secrets in each record's message (``mask_text``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def mask_logging(logger: logging.Logger | None = None) -> None:
    """Mask secrets in what the handlers of ``logger`` (the root: Hydra's console and log file)
    write: they hold the streams from before ``Tee``, so a library's warning would pass."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskSecrets) for f in handler.filters):
            handler.addFilter(MaskSecrets())


class Tee:
    """A console stream that also appends each finished line to a log file.

    A progress bar redraws its line with carriage returns: the file gets the line's last state
    only. Secrets are masked in both (``run_info.mask_text``). Everything else (``isatty``,
    ``fileno``, ``encoding``) is the console's.
    """

    def __init__(self, console: TextIO, log: TextIO) -> None:
        self.console = console
        self.log = log
        self._line = ""

    def write(self, text: str) -> int:
        self.console.write(mask_text(text))
        *lines, self._line = (self._line + text).split("\n")
        for line in lines:
            self.log.write(mask_text(line.rsplit("\r", 1)[-1]) + "\n")
        if lines:
            self.log.flush()
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def close_line(self) -> None:
        """Write a line left unfinished (a progress bar that never printed its newline)."""
        last = self._line.rsplit("\r", 1)[-1]
        if last.strip():
            self.log.write(mask_text(last) + "\n")
        self._line = ""
        self.log.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


class JobLog(Callback):
    """Hydra callback: tee the console into the job's log file; mask Hydra's saved config."""

    def __init__(self) -> None:
        self._saved: list[tuple[str, TextIO]] = []
        self._log: TextIO | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        mask_saved_config(config)
        mask_logging()
        filename = OmegaConf.select(config, "hydra.job_logging.handlers.file.filename")
        if not filename:  # Hydra's logging is configured without a file: nothing to copy into
            return
        path = Path(str(filename))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log = path.open("a", encoding="utf-8")
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            while isinstance(stream, Tee):  # left by a job of this process that ended by exiting
                stream = stream.console
            self._saved.append((name, stream))
            setattr(sys, name, Tee(stream, self._log))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # A job that exits with SystemExit (an error message, an exit code) skips this: the
        # process ends there, and the file was flushed line by line (a later job in the same
        # process, a test's, unwraps the streams it left).
        for name, stream in reversed(self._saved):
            tee = getattr(sys, name)
            if isinstance(tee, Tee):
                tee.close_line()
            setattr(sys, name, stream)
        self._saved.clear()
        if self._log is not None:
            self._log.close()
            self._log = None
