"""The loss window: the training loss summed since the last log, the throughput, the NaN guard.

Each micro-batch adds its loss to a sum kept on the device (no transfer per step). At a log point
the sum is reduced over the ranks and read in one transfer together with the gradient norm; the
sum is finite only if every loss in it was, so that read doubles as the NaN guard (a NaN on one
rank stops them all). The time spent validating and checkpointing is left out of the throughput.

A checkpoint carries the window in progress and the last logged metrics (``state_dict``), so a
resumed run logs and reports what the whole run would have.
"""

import time
from typing import Any

import torch

from . import distributed
from .divergence import Guard


class LossWindow:
    """The losses of one rank since the last log."""

    def __init__(self, ctx: distributed.Context, batch_size: int, guard: Guard) -> None:
        self.ctx = ctx
        self.batch_size = batch_size
        self.guard = guard
        self.loss = torch.zeros((), device=ctx.device)  # this rank's sum since the last log
        self.batches = 0  # micro-batches in it
        self.metrics: dict[str, float] = {}  # the last logged train/* metrics
        self._start = time.perf_counter()
        self._paused_at = 0.0

    def add(self, loss: torch.Tensor) -> None:
        self.loss += loss.detach()
        self.batches += 1

    def read(
        self, step: int, epoch: int, lr: float, grad_norm: torch.Tensor | None
    ) -> dict[str, float]:
        """The train/* metrics of the window, which then starts afresh; raises on a NaN loss."""
        # One transfer from the device for everything logged: each one waits for the GPU.
        distributed.all_reduce_sum(self.loss)
        logged = [self.loss] if grad_norm is None else [self.loss, grad_norm]
        values = torch.stack([value.float() for value in logged]).tolist()
        elapsed = time.perf_counter() - self._start
        self.guard.check_logged(values[0], step)
        rows = self.batches * self.ctx.world_size  # every rank runs as many batches
        self.metrics = {
            "train/loss": values[0] / rows,
            "train/lr": lr,
            "train/samples_per_sec": rows * self.batch_size / max(elapsed, 1e-9),
            "epoch": float(epoch),
        }
        if grad_norm is not None:
            self.metrics["train/grad_norm"] = values[1]
        self.loss.zero_()
        self.batches, self._start = 0, time.perf_counter()
        return self.metrics

    def pause(self) -> None:
        """Stop the clock: what follows (validation, checkpoints) is not training time."""
        self._paused_at = time.perf_counter()

    def resume(self) -> None:
        self._start += time.perf_counter() - self._paused_at

    def state_dict(self) -> dict[str, Any]:
        """For the checkpoint (a collective: every rank calls it); one loss sum per rank."""
        return {
            "loss_sum": distributed.gather_objects(self.loss.item()),
            "batches": self.batches,
            "metrics": self.metrics,
        }

    def load_state_dict(self, kept: dict[str, Any]) -> None:
        self.loss.fill_(kept["loss_sum"][self.ctx.rank])
        self.batches, self.metrics = kept["batches"], dict(kept["metrics"])
