"""The plan of a run: how many steps, which batches, what is saved, resolved once before the loop.

The debug modes are presets of the plan, not branches of the loop:

- ``trainer.fast_dev_run``: one optimizer step, one validation and test batch, no checkpoints;
- ``trainer.overfit_batches=N``: the first N batches of the training split in a fixed order,
  validated on the same rows, dropout off, no checkpoints.

The loop then reads the plan's numbers and flags only.
"""

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from .. import settings
from ..errors import ConfigError


@dataclass(frozen=True)
class Plan:
    """What a run does, whatever debug mode asked for it."""

    max_epochs: int
    max_steps: int  # -1: no limit
    accumulate: int  # micro-batches per optimizer step
    batch_size: int  # rows per micro-batch and rank
    log_every: int  # optimizer steps between two logs
    train_batches: int  # micro-batches per epoch and rank: whole optimizer steps only
    val_batches: int | None  # per validation (and test) and rank; None: all
    val_rows: int | None = None  # validate on the first rows only (overfitting); None: all
    shuffle: bool = True  # a new order of the training rows every epoch
    val_on_train: bool = False  # validate on the training split (overfitting)
    dropout: bool = True  # False: every dropout layer off (overfitting)
    checkpoints: bool = True  # debugging runs leave no checkpoints

    @property
    def steps_per_epoch(self) -> int:
        return self.train_batches // self.accumulate

    @property
    def total_steps(self) -> int:
        """The optimizer steps of the whole run (the learning-rate schedule's length)."""
        total = self.max_epochs * self.steps_per_epoch
        return min(total, self.max_steps) if self.max_steps > 0 else total

    def keep_going(self, global_step: int, epoch: int, stopped_early: bool) -> bool:
        if stopped_early or epoch >= self.max_epochs:
            return False
        return self.max_steps < 0 or global_step < self.max_steps


def plan(trainer: DictConfig, batch_size: Any, train_rows: int, world_size: int) -> Plan:
    """The plan for ``trainer`` (``cfg.trainer``) over a training split of ``train_rows`` rows."""
    accumulate = settings.positive_int(
        trainer.accumulate_grad_batches, "trainer.accumulate_grad_batches"
    )
    batch_size = settings.positive_int(batch_size, "data.batch_size")
    full = train_rows // (batch_size * world_size)  # whole batches per rank
    common = {
        "max_epochs": settings.positive_int(trainer.max_epochs, "trainer.max_epochs"),
        "max_steps": int(trainer.max_steps),
        "accumulate": accumulate,
        "batch_size": batch_size,
        "log_every": settings.positive_int(trainer.log_every_n_steps, "trainer.log_every_n_steps"),
        "val_batches": _limit(trainer.limit_val_batches, None, "trainer.limit_val_batches"),
    }
    overfit = int(trainer.overfit_batches or 0)
    if trainer.fast_dev_run:
        common |= {"max_epochs": 1, "max_steps": 1, "val_batches": 1, "checkpoints": False}
        limit = accumulate
    elif overfit:
        rows = min(train_rows, overfit * batch_size * world_size)
        common |= {"val_rows": rows, "shuffle": False, "val_on_train": True}
        common |= {"dropout": False, "checkpoints": False}
        limit = overfit
    else:
        limit = _limit(trainer.limit_train_batches, full, "trainer.limit_train_batches")
    train_batches = min(limit, full) // accumulate * accumulate
    if train_batches < 1:
        raise ConfigError(
            f"no complete optimizer step fits in an epoch: the training split has "
            f"{train_rows} rows, and a step takes data.batch_size ({batch_size}) x world size "
            f"({world_size}) x trainer.accumulate_grad_batches ({accumulate}) rows. Lower "
            "data.batch_size or trainer.accumulate_grad_batches."
        )
    return Plan(train_batches=train_batches, **common)


def _limit(value: Any, total: int | None, name: str) -> Any:
    """A batch limit: None (all), an int (a count) or a float in (0, 1] (a fraction)."""
    if total is None:  # no split size to take a fraction of
        value = settings.integer(1, nullable=True)(value, name)
    value = settings.batch_limit(value, name)
    if value is None:
        return total
    if isinstance(value, float):
        assert total is not None  # with no split size, the integer rule above refused fractions
        return max(1, int(value * total))
    return value if total is None else min(value, total)
