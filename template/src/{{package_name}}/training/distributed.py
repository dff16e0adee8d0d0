"""Running on one process or many: torchrun's environment, the process group, reductions.

``torchrun --nproc_per_node N -m <package>.train`` starts N processes and sets RANK, LOCAL_RANK
and WORLD_SIZE; a plain ``python -m`` run is a world of one, where every helper here is a no-op.
Every rank must call the collective helpers in the same order.
"""

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from .. import settings
from ..errors import ConfigError


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the world size and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(accelerator: str = "auto") -> Context:
    """Pick the device and, under torchrun, join the process group (nccl on CUDA, else gloo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    settings.one_of(*settings.ACCELERATORS)(accelerator, "trainer.accelerator")
    if accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator=cuda but PyTorch sees no CUDA device: run on a GPU machine with "
            "a CUDA build of torch, or use trainer.accelerator=cpu (or auto)."
        )
    use_cuda = accelerator != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        _join("nccl" if use_cuda else "gloo", device if use_cuda else None)
    return Context(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


_JOINED = 0  # process groups this process has joined: one per job of a sweep (train -m)


def _join(backend: str, device: torch.device | None) -> None:
    """Join the process group, once per job: a sweep run under torchrun joins a new one for
    each of its jobs, after ``cleanup`` destroyed the last one.

    Every group's rendezvous writes the same keys into torchrun's store; a second group reading
    them could find the first one's addresses, left there (a hang, or "connection reset by
    peer"). From the second on, each group gets keys of its own: the ranks run the same jobs in
    the same order, so they count the same.
    """
    global _JOINED
    if _JOINED == 0:
        dist.init_process_group(backend=backend, device_id=device)
    else:
        from torch.distributed.rendezvous import rendezvous

        store, rank, world_size = next(rendezvous("env://"))
        store = dist.PrefixStore(f"job-{_JOINED}/", store)
        dist.init_process_group(
            backend=backend, store=store, rank=rank, world_size=world_size, device_id=device
        )
    _JOINED += 1


def cleanup() -> None:
    """Destroy every group while the interpreter is whole, and keep no reference to one: a gloo
    group still alive at interpreter exit can abort the process ("terminate called without an
    active exception") after the work is done. No barrier: this also runs after an error, when
    the other ranks may never arrive."""
    global _FLAG_GROUP
    _FLAG_GROUP = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place; returns it."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not _active():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj``, on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


_FLAG_GROUP: tuple[Any, Any] | None = None  # (the world it was made in, the gloo group)


def _flag_group() -> Any:
    """The CPU (gloo) group the ranks agree on flags in: made once per process group, not once
    per ``fit`` (a search runs many fits in one process; each group holds threads and sockets)."""
    global _FLAG_GROUP
    world = dist.group.WORLD
    if _FLAG_GROUP is None or _FLAG_GROUP[0] is not world:
        _FLAG_GROUP = (world, dist.new_group(backend="gloo"))  # a collective: every rank is here
    return _FLAG_GROUP[1]


class Agreement:
    """Whether a flag is up on any rank, agreed by every rank at the same step, without waiting.

    One process reads its own flag. Several start, at every step, an all-reduce of their flags
    in the background on a CPU (gloo) group, and read the previous step's result: a step late,
    but with no device-to-host transfer and no wait for the slowest rank. Every rank calls
    ``poll`` once per step, so every rank sees the same answer at the same step.
    """

    def __init__(self) -> None:
        self._group = _flag_group() if _active() else None
        self._pending: tuple[Any, torch.Tensor] | None = None

    def poll(self, flag: bool) -> bool:
        """True on every rank once ``flag`` was up on a rank at the previous call (or now,
        in a world of one)."""
        if self._group is None:
            return flag
        agreed = False
        if self._pending is not None:
            work, value = self._pending
            work.wait()  # long done: it was started a whole step ago
            agreed = bool(value.item() > 0)
        value = torch.tensor([1.0 if flag else 0.0])
        work = dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self._group, async_op=True)
        self._pending = (work, value)
        return agreed

    def close(self) -> None:
        """Wait for the reduction in flight (every rank started it), so none is left behind."""
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None


class StopFlag:
    """Set by SIGTERM, SIGUSR1 (preemption, ``scancel --signal``) or SIGINT (Ctrl-C); read at
    step boundaries.

    The handler only records the signal. The trainer agrees on the flag across ranks with
    ``Agreement`` so that every rank saves a checkpoint at the same step, then exits.

    A second Ctrl-C stops at once, as command-line tools do: it raises ``KeyboardInterrupt``
    wherever the process is, without saving (checkpoints are written atomically, so the files
    already there stay whole). One that comes within ``REPEAT_AFTER`` seconds of the first is
    not a second press but the same one delivered twice: a terminal sends SIGINT to torchrun and
    to its workers, and torchrun then forwards its own to them.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
    REPEAT_AFTER = 1.0  # seconds

    def __init__(self) -> None:
        self.signal: int | None = None
        self._at = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in self.SIGNALS:
            if sig == signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # started to ignore Ctrl-C (nohup, a shell's background job): it stays so
            # Outside the main thread signals cannot be handled: the flag then stays down.
            with contextlib.suppress(ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        now = time.monotonic()
        if self.signal is None:
            self.signal, self._at = signum, now
        elif signum == signal.SIGINT and now - self._at >= self.REPEAT_AFTER:
            raise KeyboardInterrupt

    @property
    def raised(self) -> bool:
        return self.signal is not None


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of DataLoader workers: only the main process reacts to SIGTERM (and
    to Ctrl-C, which a terminal sends to the workers too)."""
    for sig in StopFlag.SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
