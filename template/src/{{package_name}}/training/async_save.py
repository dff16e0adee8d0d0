"""Checkpoint writes off the training thread (``checkpoint.async_save=true``).

A save has two halves: taking the snapshot (the states as they are at this step) and writing it
(``torch.save``, fsync, rename, pruning the old step files: ``checkpoint.py``). With
``async_save`` the step does the first half only, copying every tensor to CPU memory (``copied``:
new tensors, since the training thread keeps updating the weights and the optimizer's state in
place), and hands the second half to one background thread (``Writer``). One write is in flight
at most: the next save waits for the previous one, and so do the end of training, a stop on a
signal and an exception (``Writer.wait``), so a file the run reports as written is on disk, and
the files appear in the same order as with synchronous saves. A write that failed raises its
error on the training thread, at the next save or at the end: never lost.

What it saves: the step's time of ``torch.save`` + fsync (tens of ms for a small CNN, seconds for
a model of hundreds of MB on a slow disk) becomes the time of a copy to CPU memory; the cost is
that memory, one more copy of the states while the write runs. docs/benchmarks.md has numbers.
"""

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

__all__ = ["Writer", "copied"]

log = logging.getLogger(__name__)


def copied(tree: Any) -> Any:
    """``tree`` (dicts, lists, tuples of tensors and plain values) with every tensor copied to
    CPU memory and every container new: nothing in it is shared with the training thread."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {key: copied(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [copied(value) for value in tree]
    if isinstance(tree, tuple):
        return tuple(copied(value) for value in tree)
    return tree  # numbers, strings, None: immutable


class Writer:
    """One background thread that runs the writes it is given, one at a time, in order."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[Any] | None = None

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        """Wait for the previous write (raising its error), then start ``write(*args)``."""
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending = self._pool.submit(write, *args)

    def wait(self) -> None:
        """Block until the write in flight, if any, is on disk; raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def wait_quietly(self) -> None:
        """``wait``, logging a failed write instead of raising it (when another error is on
        its way already)."""
        try:
            self.wait()
        except Exception:
            log.exception("a checkpoint write failed")

    def close(self, error: BaseException | None = None) -> None:
        """Wait for the last write and stop the thread; the write's error is raised unless
        ``error`` (the one that ends training) is already propagating."""
        try:
            if error is None:
                self.wait()
            else:
                self.wait_quietly()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
