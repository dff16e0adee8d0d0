"""Validation: when it runs, what it measures, and early stopping on what it measured.

One schedule: ``trainer.val_check_interval`` (every N optimizer steps, or a fraction of an
epoch) and the end of every ``trainer.check_val_every_n_epoch``-th epoch. A split is measured
with the task's own metrics (``task.metrics``, the same torchmetrics collection evaluate uses)
and the mean of the task's loss; under DDP every rank measures its shard and the sums are
reduced over the ranks (torchmetrics syncs its states when torch.distributed is initialised).
"""

import logging
from collections.abc import Iterable
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torchmetrics import MetricCollection

from .. import settings
from ..errors import ConfigError
from ..tasks import Task
from . import distributed
from . import precision as amp

log = logging.getLogger(__name__)


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` validations."""

    def __init__(self, cfg: DictConfig) -> None:
        self.monitor = str(cfg.monitor)
        mode = settings.one_of("min", "max")(cfg.mode, "trainer.early_stopping.mode")
        self.sign = 1.0 if mode == "min" else -1.0
        self.min_delta = float(cfg.min_delta)
        self.patience = int(cfg.patience)
        self.enabled = bool(cfg.enabled)

    def update(self, state: Any, metrics: dict[str, float]) -> bool:
        """Record a validation in ``state`` (a ``TrainerState``); True if it is the best so far."""
        value = metrics.get(self.monitor)
        if value is None:
            raise ConfigError(
                f"trainer.early_stopping.monitor={self.monitor!r} is not a "
                f"validation metric; choose one of {sorted(metrics)}."
            )
        best = state.best_metric
        if best is None or self.sign * (best - value) > self.min_delta:
            state.best_metric, state.best_step, state.bad_validations = value, state.global_step, 0
            return True
        state.bad_validations += 1
        if self.enabled and state.bad_validations >= self.patience:
            state.stopped_early = True
            log.info("early stopping at step %d", state.global_step)
        return False


class Validator:
    """When to validate, and the last validation's step and metrics."""

    def __init__(
        self,
        trainer: DictConfig,
        steps_per_epoch: int,
        task: Task,
        precision: str,
        device: torch.device,
    ) -> None:
        self.task, self.precision, self.device = task, precision, device
        # Built once and reset before each validation: building a collection costs milliseconds.
        self._metrics = task.metrics("val/").to(device)
        every = settings.val_check_interval(
            trainer.val_check_interval, "trainer.val_check_interval"
        )
        # ('steps', N): every N global steps; ('epoch', N): every N steps into an epoch.
        if isinstance(every, int):
            self.every = ("steps", every)
        else:
            self.every = ("epoch", max(1, round(every * steps_per_epoch)))
        self.every_n_epochs = settings.positive_int(
            trainer.check_val_every_n_epoch, "trainer.check_val_every_n_epoch"
        )
        self.early_stopping = EarlyStopping(trainer.early_stopping)
        self.step = -1  # the step of the last validation
        self.metrics: dict[str, float] = {}

    def due(self, global_step: int, epoch: int, epoch_ends: bool, step_in_epoch: int) -> bool:
        """Whether to validate after ``global_step`` (``epoch``: the epoch now in progress)."""
        if epoch_ends:
            if epoch % self.every_n_epochs == 0:
                return True
            step_in_epoch = 0  # the end of an epoch is validated by the rule above only
        kind, n = self.every
        if kind == "steps":
            return global_step % n == 0
        return step_in_epoch > 0 and step_in_epoch % n == 0

    def measure(self, net: nn.Module, loader: Iterable[Any]) -> dict[str, float]:
        """The validation split's loss and metrics (``val/...``)."""
        return evaluate(net, loader, "val", self.task, self.precision, self.device, self._metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"val_step": self.step, "val_metrics": self.metrics}

    def load_state_dict(self, kept: dict[str, Any]) -> None:
        self.step, self.metrics = kept["val_step"], dict(kept["val_metrics"])


@torch.no_grad()
def evaluate(
    net: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    split: str,
    task: Task,
    precision: str,
    device: torch.device,
    metrics: MetricCollection | None = None,
) -> dict[str, float]:
    """``<split>/loss`` and the task's metrics over every rank's shard (no padding, no repeats).

    ``metrics``: the task's collection for ``split`` to reuse (reset first); None: a new one.
    """
    model = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    was_training = model.training
    model.eval()
    if metrics is None:
        metrics = task.metrics(f"{split}/").to(device)
    metrics.reset()
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, rows
    for inputs, targets in loader:
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with amp.autocast(precision, device):
            outputs = model(inputs)
        outputs = outputs.float()
        loss = task.loss(outputs, task.encode(targets), reduction="sum")
        sums += torch.stack([loss.double(), sums.new_tensor(float(len(targets)))])
        task.update(metrics, task.decode(outputs), targets)
    distributed.all_reduce_sum(sums)
    model.train(was_training)
    values = {key: float(value) for key, value in metrics.compute().items()}
    return {f"{split}/loss": sums[0].item() / max(sums[1].item(), 1.0), **values}
