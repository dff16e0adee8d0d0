"""The checkpointer: resuming a run, when to save, what a checkpoint holds, and the best one.

The loop asks it (``resume()``, ``due(...)``, ``save(...)``, ``save_best(...)``) instead of
holding its policy. The file format and the files (``step-N.pt``, ``last.pt``, ``best.pt``, the
newest ``checkpoint.keep_last`` step files kept) are ``checkpoint.py``'s; the divergence guard
(``divergence.py``) checks the loss and the weights before every write, so no file ever holds
NaN weights. A sharded model (``trainer.strategy=fsdp``) is saved as ``step-N/`` folders by
every rank at once (``sharded.py``; the ``_write_sharded`` branch), and a resume is refused
when the world size or the strategy differs from the checkpoint's.

With ``trainer.ema`` the snapshot holds ``ema`` too (``ema.py``); with ``checkpoint.async_save``
the step copies the snapshot to CPU memory and a background thread writes it (``async_save.py``):
use the checkpointer as a context manager (``with ckpt:``), whose exit waits for the last write.
"""

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..config import as_dict
from ..errors import CheckpointError
from ..tasks import Task
from ..tracking.run_info import flatten, mask_config
from . import checkpoint, distributed, divergence, fsdp, resume, sharded
from . import ema as averaging
from .async_save import Writer, copied

log = logging.getLogger(__name__)


@dataclass
class TrainerState:
    """Where the run stands; saved in every checkpoint as ``trainer_state``."""

    global_step: int = 0  # optimizer steps taken
    epoch: int = 0  # the epoch in progress
    batch_in_epoch: int = 0  # micro-batches of that epoch already consumed
    best_metric: float | None = None
    best_step: int | None = None
    bad_validations: int = 0  # validations since the last improvement (early stopping)
    stopped_early: bool = False
    run_id: str | None = None  # the tracking run, continued on resume


class Checkpointer:
    """The checkpoints of one run, in ``<output_dir>/checkpoints``; every rank holds one."""

    def __init__(
        self,
        cfg: DictConfig,
        ctx: distributed.Context,
        output_dir: Path,
        *,
        enabled: bool,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: Any,
        task: Task,
        feature_scale: dict[str, Any] | None,
        ema: averaging.EMA | None = None,
    ) -> None:
        self.cfg, self.ctx, self.enabled = cfg, ctx, enabled
        self.folder = output_dir / "checkpoints"
        self.every = int(cfg.checkpoint.every_n_steps or 0)
        self.model, self.optimizer, self.scheduler, self.scaler = (
            model,
            optimizer,
            scheduler,
            scaler,
        )
        self.task, self.feature_scale = task, feature_scale
        self.guard = divergence.Guard(self.folder, ctx)  # NaN checks; sets aside what diverged
        # The run's config as every checkpoint keeps it: resolved and masked once (~1 ms).
        self.config = mask_config(OmegaConf.to_container(cfg, resolve=True))  # no secrets
        self.saved: tuple[int, Path | None] | None = None  # the last step file: (step, path)
        self.sharded = fsdp.is_sharded(model)  # FSDP: step-N/ folders (sharded.py)
        self.strategy = strategy(ctx.world_size, self.sharded)
        self.ema = ema  # the average of the weights, saved as ``ema`` (None: off)
        self.writer = Writer() if cfg.checkpoint.get("async_save") else None
        if self.writer is not None:  # a diverged run renames the file being written: wait
            self.guard.before_set_aside = self.writer.wait_quietly

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> None:
        """The last asynchronous write is on disk (its error raised, unless one is on its way)."""
        if self.writer is not None:
            self.writer.close(error)

    # ---- resume -------------------------------------------------------------------------------

    def resume(self, *logs: Any) -> TrainerState | None:
        """Load the checkpoint ``ckpt_path`` names, with this rank's random states, and what
        ``logs`` (the loss window, the validator) kept in it; returns where the run stood.

        None: a new run (no ``ckpt_path``, or ``last`` with nothing saved yet).
        """
        resumed = checkpoint.resolve(self.cfg.ckpt_path, self.folder)
        if resumed is None:
            return None
        saved, path = resumed
        world_size = saved.get("world_size", 1)
        if world_size != self.ctx.world_size:
            raise CheckpointError(
                f"{path} was written by a run of {world_size} process(es), this run has "
                f"{self.ctx.world_size}: the data order and the per-rank random states would "
                "differ, so the resume would not be exact. Resume with the same number of "
                "processes, or start a new run (ckpt_path=null) and load the weights yourself."
            )
        self._check_strategy(saved, path)
        self._load_state(saved, path)
        checkpoint.set_rng_state(saved["rng"][self.ctx.rank])
        if "train_log" in saved:  # checkpoints of an older version have none
            for part in logs:
                part.load_state_dict(saved["train_log"])
        state = TrainerState(**saved["trainer_state"])
        log.info("resumed from %s at step %d (epoch %d)", path, state.global_step, state.epoch)
        return state

    def _load_state(self, saved: dict[str, Any], path: Path) -> None:
        """Load the states, after comparing the checkpoint's config with this one (resume.py)."""
        current = as_dict(self.cfg, resolve=True)
        applied = resume.check(saved.get("config"), current, path)
        try:
            if "sharded" in saved:  # a step-N/ folder: every rank loads its shards
                sharded.load(self.model, self.optimizer, path)
            else:
                self.model.load_state_dict(saved["model"])
                self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            if saved.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(saved["scaler"])
            if note := averaging.load(self.ema, saved, path):
                applied.append(note)
        except (RuntimeError, ValueError, KeyError) as error:
            first = str(error).strip().splitlines()[0]
            raise CheckpointError(
                f"{path} does not fit this run's model or optimizer ({first}). Resume with the "
                "config it was trained with, or start a new run (ckpt_path=null)."
            ) from None
        old_lr = flatten(saved.get("config") or {}).get("optimizer.lr")
        new_lr = flatten(current).get("optimizer.lr")
        if (
            isinstance(old_lr, (int, float))
            and isinstance(new_lr, (int, float))
            and old_lr > 0
            and new_lr > 0
            and old_lr != new_lr
        ):
            resume.apply_lr(self.optimizer, self.scheduler, old_lr, new_lr)
        for line in applied:
            log.warning(line)

    # ---- saving -------------------------------------------------------------------------------

    def due(self, step: int, epoch_ends: bool, finished: bool, signalled: bool) -> bool:
        """Save after ``step``? Every ``checkpoint.every_n_steps``, at epoch ends, at the end
        and on a signal."""
        periodic = bool(self.every) and step % self.every == 0
        return self.enabled and (periodic or epoch_ends or finished or signalled)

    def save(
        self, state: TrainerState, window: Any, validator: Any, best: bool = False
    ) -> Path | None:
        """``step-N.pt`` and ``last.pt`` (and ``best.pt``, the same file, with ``best``): a
        collective; the path on rank 0, else None. Written once per step: the best checkpoint
        of a step that saves anyway is that step's file."""
        if self.saved is not None and self.saved[0] == state.global_step:
            return self.saved[1]
        path = self._write(state, window, validator, step_file=True, best=best)
        self.guard.saved(path)  # proven by the checks that follow
        self.saved = (state.global_step, path)
        return path

    def save_best(
        self, state: TrainerState, window: Any, validator: Any, epoch_ends: bool = False
    ) -> None:
        """``best.pt``, after a validation that improved the monitored metric: with the step's
        own checkpoint when one is due at this step (one write, not two)."""
        if not self.enabled:
            return
        if self.due(state.global_step, epoch_ends, finished=False, signalled=False):
            self.save(state, window, validator, best=True)
        else:
            self._write(state, window, validator, step_file=False, best=True)

    def _write(
        self, state: TrainerState, window: Any, validator: Any, *, step_file: bool, best: bool
    ) -> Path | None:
        self.guard.check(window.loss, self.model, self.optimizer, state.global_step)  # no NaN
        snap = self.snapshot(state, window, validator)
        if self.sharded:
            return self._write_sharded(snap, state.global_step, step_file=step_file, best=best)
        path = None
        if self.ctx.is_main:
            write: Any = checkpoint.save if step_file else checkpoint.save_best
            keep = self.cfg.checkpoint.keep_last
            args: tuple[Any, ...] = (self.folder, state.global_step, keep, best)
            args = args if step_file else (self.folder,)
            path = self.folder / f"step-{state.global_step}.pt" if step_file else None
            if self.writer is None:
                path = write(snap, *args)
            else:  # the copy here, the write on the writer's thread (after the previous one)
                self.writer.submit(write, copied(snap), *args)
                path = path or self.folder / "best.pt"
        distributed.barrier()
        return path

    def snapshot(self, state: TrainerState, window: Any, validator: Any) -> dict[str, Any]:
        """The checkpoint of this moment (a collective: every rank calls it)."""
        return {
            "format_version": checkpoint.FORMAT_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "trainer_state": asdict(state),
            "rng": distributed.gather_objects(checkpoint.rng_state()),
            "config": self.config,
            "world_size": self.ctx.world_size,
            "strategy": self.strategy,  # fsdp, ddp or none (one process)
            "target_scale": None,  # what the task learnt from the data (regression: its scale)
            **self.task.state_dict(),
            "feature_scale": self.feature_scale,
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            # What metrics.json and the next log need: a resumed run reports what the whole
            # run would have (the loss window spans the interruption).
            "train_log": {**window.state_dict(), **validator.state_dict()},
        }

    # ---- sharded checkpoints (trainer.strategy=fsdp: sharded.py) -------------------------------

    def _write_sharded(
        self, snap: dict[str, Any], step: int, *, step_file: bool, best: bool
    ) -> Path | None:
        """``step-N/`` (and ``best/``, hard links to it), or ``best/`` alone: every rank writes
        its shards, rank 0 ``trainer.pt``; the path on rank 0, else None."""
        fsdp.sync_buffers(self.model)  # rank 0's batch-norm statistics, saved once for all
        rest = {k: v for k, v in snap.items() if k not in ("model", "optimizer")}
        main, folder = self.ctx.is_main, self.folder
        name = f"step-{step}" if step_file else "best"
        path = sharded.save(self.model, self.optimizer, rest, folder, name, main)
        if main and step_file:
            if best:
                sharded.link_best(path, folder)
            sharded.prune(folder, self.cfg.checkpoint.keep_last)
        distributed.barrier()
        return path if main else None

    def _check_strategy(self, saved: dict[str, Any], path: Path) -> None:
        """Refuse a checkpoint of another strategy: sharded and whole states do not load into
        each other, and a resume must continue the same run."""
        default = "ddp" if saved.get("world_size", 1) > 1 else "none"
        theirs = saved.get("strategy", default)
        if theirs != self.strategy:
            raise CheckpointError(
                f"{path} was written with strategy {theirs}, this run uses {self.strategy} "
                f"(trainer.strategy={self.cfg.trainer.get('strategy', 'ddp')}, "
                f"{self.ctx.world_size} process(es)): its model and optimizer states are laid "
                "out differently, so the resume would not be exact. Resume with the strategy "
                "and the number of processes it was written with; for its weights alone, "
                "consolidate it (python -m <package>.consolidate) and start a new run."
            )


def strategy(world_size: int, sharded_model: bool) -> str:
    """How the ranks held the model: ``fsdp``, ``ddp`` or ``none`` (one process)."""
    if sharded_model:
        return "fsdp"
    return "ddp" if world_size > 1 else "none"
