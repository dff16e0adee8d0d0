"""One run per output folder: an OS lock held for the whole run, and no fresh run over an old one.

Two runs writing to one ``paths.output_dir`` replace each other's checkpoints and metrics (each
exits 0, and the folder holds a mix of both). ``hold`` takes an exclusive lock on
``<output_dir>/train.lock`` before the run writes anything there, and refuses, with the other
run's pid, host and start time (written into the file), when another run holds it. The lock is
the operating system's (``flock``): it goes away with the process, so a run killed with SIGKILL
(or on a node that died, once the file system notices) can be resumed at once. A run that ends
removes the file (a killed one leaves it, unlocked: harmless); a run that locks the file just
as its holder removes it checks that the name still leads to the file it locked, and tries again
if not, so that two runs never hold two different files.

One lock per run: under torchrun only global rank 0 takes it (every rank of a job shares the
folder, on one machine or many), and tells the other ranks the outcome, so a second job on the
same folder stops on every rank instead of waiting. On a file system without locks (some
network file systems) the run goes on with a warning.

A folder that already holds checkpoints is refused to a new run too (``ckpt_path`` other than
``last``): its model would be replaced, and its step files mixed with the new run's.
"""

import contextlib
import datetime
import errno
import os
import socket
import sys
import warnings
from pathlib import Path
from typing import IO

from ..errors import ConfigError
from . import distributed

LOCK_FILE = "train.lock"


class FolderInUse(ConfigError):
    """Another run holds this output folder, its checkpoints belong to an earlier run, or it
    cannot be written."""


class RunLock:
    """An exclusive lock on a folder, held by this process until ``release`` (or its end)."""

    def __init__(self, handle: IO[str] | None = None, path: Path | None = None) -> None:
        self._handle = handle
        self._path = path  # removed on release (None: not ours to remove)

    def sign(self, world_size: int) -> None:
        """Who holds the lock, for the message of a run that finds the folder busy."""
        if self._handle is None:
            return
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        job = f" (rank 0 of {world_size} processes)" if world_size > 1 else ""
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"pid {os.getpid()}{job} on {socket.gethostname()}, started {started}\n")
        self._handle.flush()

    def release(self) -> None:
        if self._handle is None:
            return
        if self._path is not None:
            with contextlib.suppress(OSError):  # removed while still locked: see the module
                self._path.unlink()
        self._handle.close()  # closing the file releases the lock
        self._handle = None


def hold(output_dir: Path, ckpt_path: str | None, ctx: distributed.Context) -> RunLock:
    """Lock ``output_dir`` for this run (every rank calls this; rank 0 locks).

    Raises ``FolderInUse`` (exit code 2) on every rank when another run holds the folder, or
    when it holds an earlier run's checkpoints and this run does not resume it.
    """
    lock, problem = RunLock(), None
    if ctx.is_main:
        lock, problem = _lock(output_dir)  # a busy folder first: its run is the news
        if problem is None:
            problem = _earlier_run(output_dir, ckpt_path)
        if problem is None:
            lock.sign(ctx.world_size)
    problem = distributed.broadcast_object(problem)
    if problem is not None:
        lock.release()
        raise FolderInUse(problem)
    return lock


def _earlier_run(output_dir: Path, ckpt_path: str | None) -> str | None:
    """Why a new run may not start in ``output_dir`` (None: it may)."""
    folder = output_dir / "checkpoints"
    # Single files, or the step-N/ and best/ folders of a sharded (FSDP) run.
    found = (
        any(folder.glob("*.pt")) or any(folder.glob("*/trainer.pt")) if folder.is_dir() else False
    )
    if ckpt_path == "last" or not found:
        return None
    return (
        f"{output_dir} holds the checkpoints of an earlier run ({folder}): a new run there "
        "would replace its model and mix its checkpoints with the new ones. Resume that run "
        "with ckpt_path=last, choose another paths.output_dir (or hydra.run.dir), or delete "
        f"{folder} to start over in this folder."
    )


def _lock(output_dir: Path) -> tuple[RunLock, str | None]:
    """(the lock, None), or (no lock, why the folder is busy or cannot be written)."""
    path = output_dir / LOCK_FILE
    while True:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (open for the whole run)
        except OSError as error:  # the first write of the run: say which folder, and why
            return RunLock(), (
                f"cannot write to the run's folder {output_dir} ({error.strerror or error}): "
                "choose a folder this user can write to, paths.output_dir=<folder>."
            )
        try:
            _try_lock(handle)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            return RunLock(), (
                f"another run is using {output_dir} ({holder}; {path} is locked): two runs in "
                "one folder would overwrite each other's checkpoints and metrics. Wait for it to "
                "end (or stop it), or give this run another folder: paths.output_dir=<new "
                "folder> (or hydra.run.dir=...). To continue that run once it has stopped: "
                f"ckpt_path=last paths.output_dir={output_dir}."
            )
        except OSError as error:  # no locks on this file system (ENOLCK, ENOSYS, ...)
            if error.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            warnings.warn(
                f"cannot lock {path} ({error}): this file system has no file locks, so nothing "
                "stops a second run from writing to the same folder.",
                stacklevel=3,
            )
            return RunLock(handle), None
        if _still_named(handle, path):
            return RunLock(handle, path), None
        handle.close()  # its holder removed it as this run locked it: lock the new file


def _still_named(handle: IO[str], path: Path) -> bool:
    """Whether ``path`` still names the file ``handle`` has open."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(handle.fileno())
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


if sys.platform == "win32":  # pragma: no cover (the project is tested on Linux and macOS)
    import msvcrt

    def _try_lock(handle: IO[str]) -> None:
        # Windows locks byte ranges, and other processes cannot read a locked range: lock one
        # byte far past the text, which stays readable. An unlockable range raises OSError.
        handle.seek(1 << 20)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError as error:
            raise BlockingIOError(str(error)) from None
        finally:
            handle.seek(0)

else:
    import fcntl

    def _try_lock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
