"""What the trackers besides MLflow share: a run kept as a folder (TensorBoard, CSV), its id, and
the message when a tracker's package is not installed.

A folder run lives in ``<save_dir>/<run_id>/``: the id is the folder's name (readable: the run's
name if it has one, the time it started, and a random suffix), kept in the checkpoint like
MLflow's, so that a resumed training and ``evaluate`` add to the same folder.
"""

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError
from .base import RunNotFoundError

RESUME_CHOICES = ("must", "allow")
# The logger child() is called on (typing.Self, but the package runs on Python 3.10 too).
_Runs = TypeVar("_Runs", bound="FolderRuns")


class FolderRuns:
    """What a folder run's logger (CSV, TensorBoard) does to open a run of its own: the same
    settings (``_settings``), a new folder beside this one, tagged with this run's id."""

    _settings: dict[str, Any]  # the logger's constructor arguments besides the run's own
    run_id: str

    def child(self: _Runs, run_name: str, run_id: str | None = None) -> _Runs:
        """A run of its own beside this one, tagged with its id (a search's trial); ``run_id``:
        the id to open it under (another logger's, ``tracking/multi.py``)."""
        logger: Callable[..., _Runs] = type(self)  # a subclass: its constructor takes these
        return logger(
            **self._settings,
            run_id=run_id,
            run_name=run_name,
            resume="allow",
            parent_run_id=self.run_id,
        )


def missing_package(logger: str, package: str) -> ConfigError:
    """``logger=<logger>`` needs ``package``, an optional extra of the project (exit 2)."""
    return ConfigError(
        f"logger={logger} needs the {package} package, which is not installed. Install the "
        "optional trackers with `pip install -e '.[trackers]'`, or choose another logger "
        "(logger=csv needs nothing)."
    )


def new_run_id(run_name: str | None = None) -> str:
    """``[<name>-]<YYYYmmdd-HHMMSS>-<6 hex>``: unique, sortable, and only letters, digits, ``_``
    and ``-`` (what a checkpoint accepts as a run id)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", run_name or "").strip("-_")[:64]
    return "-".join(filter(None, [name, time.strftime("%Y%m%d-%H%M%S"), secrets.token_hex(3)]))


def open_run_folder(
    save_dir: str | Path, run_id: str | None, run_name: str | None, resume: str, tracker: str
) -> tuple[Path, str, bool]:
    """The run's folder (created), its id, and whether it held the run already.

    ``run_id`` continues that run. Its folder missing: with ``resume="must"`` (the default: a
    checkpoint names a run that should be here) ``RunNotFoundError``, so that ``open_logger``
    records the work in a new run tagged ``continues_run_id``; with ``resume="allow"`` (a
    logger following another one's run id, ``tracking/multi.py``) the folder is created.
    """
    if resume not in RESUME_CHOICES:
        raise ConfigError(f"logger.resume must be one of {RESUME_CHOICES}, not {resume!r}.")
    root = Path(save_dir)
    continuing = run_id is not None
    if run_id is None:
        run_id = new_run_id(run_name)
    elif not re.fullmatch(r"[A-Za-z0-9][\w-]{0,255}", run_id):
        raise ConfigError(f"{run_id!r} is not a run id (letters, digits, '_' and '-').")
    folder = root / run_id
    existed = folder.is_dir()
    if continuing and not existed and resume == "must":
        raise RunNotFoundError(f"the run {run_id} is not in the {tracker} folder {root}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder, run_id, existed
