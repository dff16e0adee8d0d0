"""The guard against divergence: no checkpoint or metrics.json is ever written from NaN weights.

Two checks, both before every checkpoint (step, last, best, the one saved on a signal) and
before the final metrics:

- the loss: the sum of the losses since the last log is finite only if every one of them is
  (checked at every log point too);
- the state itself: every parameter, buffer and optimizer-state tensor. A finite loss does not
  vouch for the weights: an optimizer step with a huge learning rate, or an infinite gradient,
  overflows them while the loss that drove it was finite, and a forward pass in training mode
  can overflow a batch norm's running statistics.

A checkpoint's weights are only proven sound by the steps that start from them. So when either
check fails, the newest checkpoint written by this process since the last check of both that
passed (the one the failing steps started from) is set aside as ``step-N.pt.diverged`` and
``last.pt`` points at the one before it: ``last.pt`` always names weights that trained on
without a NaN. Keep ``checkpoint.keep_last`` at 2 or more to have one to fall back on.
"""

import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import NonFiniteLossError
from . import checkpoint, distributed

log = logging.getLogger(__name__)

REMEDIES = (
    "Usual causes: a learning rate too high (lower optimizer.lr or add warmup), no gradient "
    "clipping (trainer.gradient_clip_val), fp16 overflow (use trainer.precision=bf16-mixed or "
    "32), or bad values in the data."
)


def state_tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[Any]:
    """(name, tensor) for every floating tensor of the model's and the optimizer's state."""
    yield from model.named_parameters()
    yield from model.named_buffers()
    for index, values in enumerate(optimizer.state.values()):
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                yield f"optimizer state {key!r} of parameter {index}", value


def first_nonfinite(model: nn.Module, optimizer: torch.optim.Optimizer) -> str | None:
    """The name of the first non-finite tensor, or None; one transfer from the device."""
    tensors = [(n, _local(t)) for n, t in state_tensors(model, optimizer)]
    tensors = [(n, t) for n, t in tensors if t.is_floating_point()]
    if not tensors or torch.stack([torch.isfinite(t).all() for _, t in tensors]).all().item():
        return None
    return next(n for n, t in tensors if not torch.isfinite(t).all())


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of an FSDP tensor (a DTensor): each rank checks its own, and the ranks
    agree on the answer (``any_rank``)."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if to_local is not None else tensor


class Guard:
    """The checks of one training process, and the checkpoint not yet proven sound."""

    def __init__(self, ckpt_dir: Path, ctx: distributed.Context) -> None:
        self.ckpt_dir = ckpt_dir
        self.ctx = ctx
        self.unproven: Path | None = None  # the newest step-N.pt no passed check followed
        self.before_set_aside: Callable[[], None] | None = None  # an asynchronous write's wait

    def check(
        self,
        loss_sum: torch.Tensor,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        step: int,
    ) -> None:
        """Both checks, as before a checkpoint or the final metrics are written."""
        self.check_loss(loss_sum, step)
        self.check_state(model, optimizer, step)

    def check_loss(self, loss_sum: torch.Tensor, step: int) -> None:
        """Raise if the loss window (this rank's sum since the last log) is not finite."""
        if distributed.any_rank(not torch.isfinite(loss_sum).item(), self.ctx.device):
            raise self.failed(step, "the training loss became NaN or infinite")

    def check_logged(self, loss_sum: float, step: int) -> None:
        """The same for the loss read at a log point (already summed over the ranks)."""
        if not math.isfinite(loss_sum):
            raise self.failed(step, "the training loss became NaN or infinite")

    def check_state(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Raise if a parameter, buffer or optimizer state is not finite; else all is proven."""
        name = first_nonfinite(model, optimizer)
        if distributed.any_rank(name is not None, self.ctx.device):
            first = f" (first: {name})" if name else ""
            raise self.failed(step, "the weights became NaN or infinite", first)
        self.unproven = None  # the steps since the newest checkpoint stayed finite

    def saved(self, path: Path | None) -> None:
        """A step checkpoint was written: its weights are proven by the checks that follow."""
        if path is not None:
            self.unproven = path

    def failed(self, step: int, what: str, detail: str = "") -> NonFiniteLossError:
        """The error to raise, after setting aside the checkpoint the failing steps began from."""
        aside = ""
        if self.unproven is not None:
            if self.before_set_aside is not None:
                self.before_set_aside()
            if self.ctx.is_main:
                set_aside(self.unproven)
            aside = (
                f" {self.unproven.name}, the checkpoint those steps started from, was set "
                f"aside as {self.unproven.name}.diverged."
            )
        return NonFiniteLossError(
            f"{what} by step {step}{detail}, so training stopped before saving them: no checkpoint "
            f"holds non-finite weights.{aside} {last_good(self.ckpt_dir)} {REMEDIES}"
        )


def set_aside(path: Path) -> None:
    """Rename ``path`` to ``<name>.diverged``; point last.pt at the newest step file left."""
    folder = path.parent
    if path.exists():  # a step-N.pt file, or a sharded step-N/ folder (FSDP)
        path.replace(path.with_name(path.name + ".diverged"))
    remaining = checkpoint.step_files(folder)
    if remaining:
        checkpoint.link_or_copy(remaining[0], folder / "last.pt")
    else:
        (folder / "last.pt").unlink(missing_ok=True)
    log.warning("set aside %s: the steps that started from it diverged", path)


def last_good(ckpt_dir: Path) -> str:
    newest = checkpoint.step_files(ckpt_dir)
    if not newest:
        return "No checkpoint of this run is left to resume from: start again (ckpt_path=null)."
    return (
        f"The last good checkpoint is {ckpt_dir / 'last.pt'} (= {newest[0].name}): resume from "
        "it with a lower rate (ckpt_path=last optimizer.lr=<lower>; a resume applies a new "
        "optimizer.lr), or start again."
    )
