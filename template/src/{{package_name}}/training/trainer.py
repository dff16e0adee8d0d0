"""The training loop: one function, ``fit``, that reads top to bottom.

set up -> data -> model, optimizer, scheduler, scaler -> resume -> for each optimizer step:
forward and backward over ``accumulate_grad_batches`` micro-batches, clip, step, log, validate,
checkpoint, stop? -> test -> metrics.json. On the first step and every
``trainer.health.every_n_steps``-th, the health monitors (``health.py``) measure too.

The same code runs in one process and under torchrun: DDP wraps the model, every rank reads its
own slice of each global batch (``sampling.py``), metrics are summed over the ranks, and only
rank 0 logs and writes files. A run stopped at any step boundary (SIGTERM, SIGUSR1, a crash after
a checkpoint) resumes with ``ckpt_path=last`` and ends with the same parameters, bit for bit, as
a run that was never stopped.
"""

import contextlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import TensorDataset

from .. import settings, tasks
from ..data.checks import read_stats
from ..data.datasets import load_split
from ..errors import CheckpointError, ConfigError, Interrupted
from ..models.build import instantiate as _instantiate
from ..models.build import without_dropout
from ..tracking.base import Logger, NullLogger
from ..tracking.run_info import flatten, mask_config
from . import checkpoint, distributed, divergence, loading, resume
from . import precision as amp
from .health import HealthMonitor
from .sampling import EpochBatchSampler, ShardBatchSampler

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


class Stopped(Interrupted):
    """Training stopped on a signal after saving a checkpoint; resume with ckpt_path=last."""

    def __init__(self, signum: int, step: int, path: Path | None, output_dir: Path) -> None:
        # Rank 0 writes the file; the other ranks name the folder it is in.
        saved = path or output_dir / "checkpoints"
        super().__init__(
            signum,
            f"stopped by signal {signum} at step {step}; checkpoint saved to {saved}. Resume "
            f"with ckpt_path=last paths.output_dir={output_dir}.",
        )


def fit(
    cfg: DictConfig,
    output_dir: str | Path,
    logger: Logger | None = None,
    ctx: distributed.Context | None = None,
    on_validation: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train ``cfg.model`` on ``cfg.data``; returns the final metrics (also in metrics.json).

    ``on_validation(global_step, val_metrics)``, if given, is called on every rank after each
    validation in the loop, once the best checkpoint is saved; an exception it raises (a pruned
    hyperparameter-search trial) stops training there, leaving the checkpoints already written.
    """
    # ---- settings ---------------------------------------------------------------------------
    ctx = ctx or distributed.setup(cfg.trainer.accelerator)
    logger = logger if (logger is not None and ctx.is_main) else NullLogger()
    t = cfg.trainer
    precision = amp.check(t.precision)
    accumulate = _positive_int(t.accumulate_grad_batches, "trainer.accumulate_grad_batches")
    max_epochs = _positive_int(t.max_epochs, "trainer.max_epochs")
    max_steps = int(t.max_steps)
    log_every = _positive_int(t.log_every_n_steps, "trainer.log_every_n_steps")
    batch_size = _positive_int(cfg.data.batch_size, "data.batch_size")
    fast_dev_run = bool(t.fast_dev_run)
    overfit = int(t.overfit_batches or 0)
    if fast_dev_run:
        max_epochs, max_steps = 1, 1
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / "checkpoints"
    save_checkpoints = not (fast_dev_run or overfit)  # debugging runs leave no checkpoints
    task = tasks.for_data(cfg.data)
    classification = task.kind == "classification"
    device = ctx.device
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    _seed_everything(cfg.seed)  # the same initial weights on every rank

    # ---- data -------------------------------------------------------------------------------
    processed = cfg.paths.processed_dir
    train_set = load_split(cfg.data, processed, "train", task.targets)
    val_set = train_set if overfit else load_split(cfg.data, processed, "val", task.targets)
    full_batches = len(train_set) // (batch_size * ctx.world_size)
    if fast_dev_run:
        train_limit = accumulate
    elif overfit:
        train_limit = overfit
    else:
        train_limit = _limit(t.limit_train_batches, full_batches, "trainer.limit_train_batches")
    train_limit = min(train_limit, full_batches) // accumulate * accumulate  # whole steps only
    if train_limit < 1:
        raise ConfigError(
            f"no complete optimizer step fits in an epoch: the training split has "
            f"{len(train_set)} rows, and a step takes data.batch_size ({batch_size}) x world size "
            f"({ctx.world_size}) x trainer.accumulate_grad_batches ({accumulate}) rows. Lower "
            "data.batch_size or trainer.accumulate_grad_batches."
        )
    train_sampler = EpochBatchSampler(
        len(train_set),
        batch_size,
        seed=cfg.seed,
        shuffle=not overfit,
        rank=ctx.rank,
        world_size=ctx.world_size,
        max_batches=train_limit,
    )
    val_rows = min(len(val_set), overfit * batch_size * ctx.world_size) if overfit else None
    val_limit = (
        1 if fast_dev_run else _limit(t.limit_val_batches, None, "trainer.limit_val_batches")
    )
    workers = int(cfg.data.num_workers)
    train_loader = loading.batches(train_set, train_sampler, workers, device, cfg.seed)
    val_sampler = _shards(val_set, batch_size, ctx, val_limit, val_rows)
    val_loader = loading.batches(val_set, val_sampler, workers, device, cfg.seed)
    steps_per_epoch = train_limit // accumulate
    total_steps = max_epochs * steps_per_epoch
    if max_steps > 0:
        total_steps = min(total_steps, max_steps)
    val_every = _val_every(t.val_check_interval, steps_per_epoch)
    # Regression targets are standardised with the training split's mean and standard deviation;
    # the network predicts in those units, metrics are reported in the target's own units.
    target_scale = _target_scale(train_set) if not classification else None
    # prepare's feature scaling travels with the weights: predict applies the scaling the model
    # was trained with, even after the data has been prepared again.
    stats = Path(processed) / "stats.json"
    feature_scale = read_stats(stats) if stats.is_file() else None  # unreadable: exit 5

    # ---- model, optimizer, scheduler, gradient scaler ---------------------------------------
    model = tasks.build_model(cfg).to(device)
    if overfit:
        without_dropout(model)  # learning one batch by heart: dropout would only blur it
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if t.compile:
        model.compile()  # in place: the state-dict keys stay those of the plain model
    net: nn.Module = model
    if ctx.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = _instantiate(cfg.optimizer, "optimizer")(model.parameters())
    scheduler = _instantiate(cfg.scheduler, "scheduler")(optimizer, total_steps=total_steps)
    scaler = amp.grad_scaler(precision, device)
    loss_fn = F.cross_entropy if classification else F.mse_loss

    # ---- resume -----------------------------------------------------------------------------
    state = TrainerState(run_id=getattr(logger, "run_id", None))
    resumed = checkpoint.resolve(cfg.ckpt_path, ckpt_dir)
    if resumed is not None:
        saved, path = resumed
        if saved.get("world_size", 1) != ctx.world_size:
            raise CheckpointError(
                f"{path} was written by a run of {saved.get('world_size', 1)} process(es), this "
                f"run has {ctx.world_size}: the data order and the per-rank random states would "
                "differ, so the resume would not be exact. Resume with the same number of "
                "processes, or start a new run (ckpt_path=null) and load the weights yourself."
            )
        _load_state(saved, path, cfg, model, optimizer, scheduler, scaler)
        state = TrainerState(**saved["trainer_state"])
        if getattr(logger, "run_id", None):  # the run continued (or a new one: open_logger)
            state.run_id = logger.run_id
        checkpoint.set_rng_state(saved["rng"][ctx.rank])
        log.info("resumed from %s at step %d (epoch %d)", path, state.global_step, state.epoch)
    else:
        _seed_everything(cfg.seed + ctx.rank)  # different dropout masks on different ranks
    # A new run (a resumed one too, when its own run is in another store: tracking/base.py).
    if ctx.is_main and (state.global_step == 0 or getattr(logger, "resumed", True) is False):
        logger.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))

    def snapshot() -> dict[str, Any]:
        """The checkpoint of this moment (a collective: every rank calls it)."""
        return {
            "format_version": checkpoint.FORMAT_VERSION,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "trainer_state": asdict(state),
            "rng": distributed.gather_objects(checkpoint.rng_state()),
            "config": mask_config(OmegaConf.to_container(cfg, resolve=True)),  # no secrets
            "world_size": ctx.world_size,
            "target_scale": target_scale,
            "feature_scale": feature_scale,
            # What metrics.json and the next log need: a resumed run reports what the whole
            # run would have (the loss window spans the interruption; one entry per rank).
            "train_log": {
                "loss_sum": distributed.gather_objects(window_loss.item()),
                "batches": window_batches,
                "metrics": train_metrics,
                "val_step": val_step,
                "val_metrics": val_metrics,
            },
        }

    def save() -> Path | None:
        guard.check(window_loss, model, optimizer, state.global_step)  # never save NaN weights
        snap = snapshot()
        path = None
        if ctx.is_main:
            path = checkpoint.save(snap, ckpt_dir, state.global_step, cfg.checkpoint.keep_last)
        guard.saved(path)
        distributed.barrier()
        return path

    # ---- the loop -----------------------------------------------------------------------------
    monitor = t.early_stopping
    clip = t.gradient_clip_val  # read once: config lookups in the hot loop cost microseconds
    every = int(cfg.checkpoint.every_n_steps or 0)
    channels_last = bool(t.channels_last)
    check_every = _positive_int(t.check_val_every_n_epoch, "trainer.check_val_every_n_epoch")
    val_step = -1
    settings.one_of("min", "max")(monitor.mode, "trainer.early_stopping.mode")
    sign = 1.0 if monitor.mode == "min" else -1.0
    window_loss = torch.zeros((), device=device)
    guard = divergence.Guard(ckpt_dir, ctx)  # NaN checks; sets aside what diverged
    window_batches, window_start = 0, time.perf_counter()
    val_metrics: dict[str, float] = {}
    train_metrics: dict[str, float] = {}
    if resumed is not None and "train_log" in resumed[0]:
        kept = resumed[0]["train_log"]
        window_loss.fill_(kept["loss_sum"][ctx.rank])
        window_batches, train_metrics = kept["batches"], dict(kept["metrics"])
        val_step, val_metrics = kept["val_step"], dict(kept["val_metrics"])
    bar = _progress(total_steps, state.global_step, ctx.is_main and t.enable_progress_bar)
    health = HealthMonitor(  # gradients, updates, dead units, loss trends: see health.py
        model,
        t.get("health"),
        logger,
        enabled=ctx.is_main,
        start_step=state.global_step,
        output_dir=output_dir,
        precision=precision,
        skips_nonfinite=scaler.is_enabled(),
        samples=val_set.tensors if val_set.tensors[0].dim() == 4 else None,  # images
    )
    health_at = health.next_step  # the next optimizer step it measures (-1: none)
    stop = distributed.StopFlag()
    with stop, _profiler(t.profiler, output_dir, ctx) as profiler:
        while _keep_going(state, max_epochs, max_steps):
            train_sampler.set_epoch(state.epoch, skip=state.batch_in_epoch)
            loading.reseed(train_loader, cfg.seed + state.epoch)
            net.train()
            batches = enumerate(train_loader, start=state.batch_in_epoch)
            for index, (inputs, targets) in batches:
                inputs, targets = _to(inputs, targets, device, channels_last, target_scale)
                step_ends = (index + 1) % accumulate == 0
                sampled = state.global_step + 1 == health_at  # a step the monitors measure
                if sampled:
                    health.attach()  # forward hooks on the ReLUs (dead units), this step only
                sync = step_ends or ctx.world_size == 1
                with contextlib.nullcontext() if sync else net.no_sync():  # type: ignore[operator]
                    with amp.autocast(precision, device):
                        outputs = net(inputs)
                    loss = loss_fn(outputs.float(), targets)
                    scaler.scale(loss / accumulate if accumulate > 1 else loss).backward()
                # The window's loss sum doubles as the NaN guard: it is finite only if every
                # loss in it is, and it is checked at every log point and before every save.
                window_loss += loss.detach()
                window_batches += 1
                if not step_ends:
                    continue

                # -- optimizer step: unscale, clip, step, update the scale, schedule, zero --
                scaler.unscale_(optimizer)
                if sampled:
                    health.before_step()  # per-layer gradient norms (before clipping), weights
                log_now = (state.global_step + 1) % log_every == 0
                grad_norm = None
                if clip is not None or log_now:
                    limit = clip if clip is not None else math.inf
                    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), limit)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state.global_step += 1
                if sampled:
                    health_at = health.after_step(state.global_step)  # update ratios, warnings
                epoch_ends = index + 1 == train_limit
                if epoch_ends:
                    state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                else:
                    state.batch_in_epoch = index + 1
                if profiler is not None:
                    profiler.step()
                if bar is not None:
                    bar.update(1)

                # -- log ------------------------------------------------------------------------
                if log_now or epoch_ends:
                    # One transfer from the device for everything logged: each one waits for the
                    # GPU. The loss sum is reduced over the ranks, so a NaN on one stops them all.
                    distributed.all_reduce_sum(window_loss)
                    logged = [window_loss] if grad_norm is None else [window_loss, grad_norm]
                    values = torch.stack([value.float() for value in logged]).tolist()
                    elapsed = time.perf_counter() - window_start
                    guard.check_logged(values[0], state.global_step)
                    rows = window_batches * ctx.world_size  # every rank runs as many batches
                    train_metrics = {
                        "train/loss": values[0] / rows,
                        "train/lr": optimizer.param_groups[0]["lr"],
                        "train/samples_per_sec": rows * batch_size / max(elapsed, 1e-9),
                        "epoch": float(state.epoch),
                    }
                    if grad_norm is not None:
                        train_metrics["train/grad_norm"] = values[1]
                    logger.log_metrics(train_metrics, step=state.global_step)
                    health.observe_loss(state.global_step, train_metrics["train/loss"])
                    if bar is not None:
                        bar.set_postfix(loss=f"{train_metrics['train/loss']:.4f}", refresh=False)
                    window_loss.zero_()
                    window_batches, window_start = 0, time.perf_counter()

                # -- validate, keep the best, stop early ----------------------------------------
                paused = time.perf_counter()  # throughput counts training time only
                step_in_epoch = 0 if epoch_ends else state.batch_in_epoch // accumulate
                checked_epoch_ends = epoch_ends and state.epoch % check_every == 0
                if checked_epoch_ends or _due(val_every, state.global_step, step_in_epoch):
                    val_step = state.global_step
                    val_metrics = evaluate(net, val_loader, "val", precision, ctx, target_scale)
                    gap = health.on_validation(state.global_step, train_metrics, val_metrics)
                    val_metrics |= gap  # val/generalisation_gap
                    logger.log_metrics(val_metrics, step=state.global_step)
                    value = val_metrics.get(monitor.monitor)
                    if value is None:
                        raise ConfigError(
                            f"trainer.early_stopping.monitor={monitor.monitor!r} is not a "
                            f"validation metric; choose one of {sorted(val_metrics)}."
                        )
                    best = state.best_metric
                    if best is None or sign * (best - value) > monitor.min_delta:
                        state.best_metric, state.best_step, state.bad_validations = (
                            value,
                            state.global_step,
                            0,
                        )
                        if save_checkpoints:
                            guard.check(window_loss, model, optimizer, state.global_step)
                            snap = snapshot()
                            if ctx.is_main:
                                checkpoint.save_best(snap, ckpt_dir)
                            distributed.barrier()
                    else:
                        state.bad_validations += 1
                        if monitor.enabled and state.bad_validations >= monitor.patience:
                            state.stopped_early = True
                            log.info("early stopping at step %d", state.global_step)
                    if on_validation is not None:
                        on_validation(state.global_step, val_metrics)

                # -- checkpoint, and stop on a signal (every rank at the same step) -------------
                signalled = distributed.any_rank(stop.raised, device)
                finished = not _keep_going(state, max_epochs, max_steps)
                periodic = bool(every) and state.global_step % every == 0
                path = None
                if save_checkpoints and (periodic or epoch_ends or finished or signalled):
                    path = save()
                if signalled:
                    if bar is not None:
                        bar.close()
                    raise Stopped(stop.signal or 15, state.global_step, path, output_dir)
                window_start += time.perf_counter() - paused
                if finished:
                    break

    if bar is not None:
        bar.close()
    guard.check(window_loss, model, optimizer, state.global_step)  # no metrics.json of NaN
    health.finish(state.global_step)  # history.json, last grid, warnings recalled in the log

    # ---- final validation and test, with the best weights ---------------------------------
    if val_step != state.global_step:  # the final weights have not been validated yet
        val_metrics = evaluate(net, val_loader, "val", precision, ctx, target_scale)
    metrics = {**train_metrics, **val_metrics, "step": float(state.global_step)}
    if t.test_after_fit:
        best_path = ckpt_dir / "best.pt"
        if save_checkpoints and best_path.is_file():
            model.load_state_dict(checkpoint.load_file(best_path)["model"])
        test_set = load_split(cfg.data, processed, "test", task.targets)
        test_sampler = _shards(test_set, batch_size, ctx, val_limit)
        test_loader = loading.batches(test_set, test_sampler, workers, device, cfg.seed)
        metrics.update(evaluate(net, test_loader, "test", precision, ctx, target_scale))
    if ctx.is_main:
        logger.log_metrics(metrics, step=state.global_step)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# ---- evaluation ---------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    net: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    split: str,
    precision: str,
    ctx: distributed.Context,
    target_scale: dict[str, float] | None,
) -> dict[str, float]:
    """Loss and metrics of ``split``, over all ranks' shards (no padding, no repeats)."""
    model = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
    was_training = model.training
    model.eval()
    regression = target_scale is not None
    sums = torch.zeros(6 if regression else 3, dtype=torch.float64, device=ctx.device)
    for inputs, targets in loader:
        inputs, targets = _to(inputs, targets, ctx.device, False, target_scale)
        with amp.autocast(precision, ctx.device):
            outputs = model(inputs)
        outputs = outputs.float()
        if regression:
            assert target_scale is not None
            loss = F.mse_loss(outputs, targets, reduction="sum")
            mean, std = target_scale["mean"], target_scale["std"]
            pred, true = outputs * std + mean, targets * std + mean
            error = (pred - true).double()
            count = torch.tensor(float(len(targets)), dtype=torch.float64, device=ctx.device)
            sums += torch.stack(
                [
                    loss.double(),
                    count,
                    error.abs().sum(),
                    error.pow(2).sum(),
                    true.double().sum(),
                    true.double().pow(2).sum(),
                ]
            )
        else:
            loss = F.cross_entropy(outputs, targets, reduction="sum")
            correct = (outputs.argmax(dim=1) == targets).sum()
            count = torch.tensor(float(len(targets)), dtype=torch.float64, device=ctx.device)
            sums += torch.stack([loss.double(), count, correct.double()])
    distributed.all_reduce_sum(sums)
    model.train(was_training)
    n = max(sums[1].item(), 1.0)
    metrics = {f"{split}/loss": sums[0].item() / n}
    if regression:
        sse, total, total_sq = sums[3].item(), sums[4].item(), sums[5].item()
        variance_sum = total_sq - total * total / n
        metrics[f"{split}/mse"] = sse / n
        metrics[f"{split}/mae"] = sums[2].item() / n
        metrics[f"{split}/r2"] = 1.0 - sse / variance_sum if variance_sum > 0 else 0.0
    else:
        metrics[f"{split}/accuracy"] = sums[2].item() / n
    return metrics


# ---- building blocks ----------------------------------------------------------------------------


def _shards(
    dataset: TensorDataset,
    batch_size: int,
    ctx: distributed.Context,
    max_batches: int | None,
    rows: int | None = None,
) -> ShardBatchSampler:
    return ShardBatchSampler(
        len(dataset) if rows is None else rows,
        batch_size,
        rank=ctx.rank,
        world_size=ctx.world_size,
        max_batches=max_batches,
    )


def _to(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    device: torch.device,
    channels_last: bool,
    target_scale: dict[str, float] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = inputs.to(device, non_blocking=True)
    targets = targets.to(device, non_blocking=True)
    if channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    if target_scale is not None:
        targets = (targets - target_scale["mean"]) / target_scale["std"]
    return inputs, targets


def _target_scale(dataset: TensorDataset) -> dict[str, float]:
    targets = dataset.tensors[1].double()
    std = targets.std().item() if len(targets) > 1 else 1.0
    return {"mean": targets.mean().item(), "std": std if std > 0 else 1.0}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global generator users may call)
    torch.manual_seed(seed)


def _keep_going(state: TrainerState, max_epochs: int, max_steps: int) -> bool:
    if state.stopped_early or state.epoch >= max_epochs:
        return False
    return max_steps < 0 or state.global_step < max_steps


def _load_state(
    saved: dict[str, Any],
    path: Path,
    cfg: DictConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
) -> None:
    """Load a checkpoint's states, after comparing its config with this one (``resume.py``)."""
    current = OmegaConf.to_container(cfg, resolve=True)
    applied = resume.check(saved.get("config"), current, path)  # type: ignore[arg-type]
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(saved["scaler"])
    except (RuntimeError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(
            f"{path} does not fit this run's model or optimizer ({first}). Resume with the "
            "config it was trained with, or start a new run (ckpt_path=null)."
        ) from None
    lrs = [flatten(c).get("optimizer.lr") for c in (saved.get("config") or {}, current)]
    if all(isinstance(lr, (int, float)) and lr > 0 for lr in lrs) and lrs[0] != lrs[1]:
        resume.apply_lr(optimizer, scheduler, *lrs)
    for line in applied:
        log.warning(line)


def _positive_int(value: Any, name: str) -> int:
    return settings.positive_int(value, name)


def _limit(value: Any, total: int | None, name: str) -> Any:
    """A batch limit: None (all), an int (a count) or a float in (0, 1] (a fraction)."""
    if total is None:  # no split size to take a fraction of
        value = settings.integer(1, nullable=True)(value, name)
    value = settings.batch_limit(value, name)
    if value is None:
        return total
    if isinstance(value, float):
        return max(1, int(value * total))
    return value if total is None else min(value, total)


def _val_every(value: Any, steps_per_epoch: int) -> tuple[str, int]:
    """``val_check_interval`` as ('steps', N) (global steps) or ('epoch', N) (into the epoch)."""
    value = settings.val_check_interval(value, "trainer.val_check_interval")
    if isinstance(value, int):
        return ("steps", value)
    return ("epoch", max(1, round(value * steps_per_epoch)))


def _due(every: tuple[str, int], global_step: int, step_in_epoch: int) -> bool:
    """Validation within an epoch (``step_in_epoch`` is 0 at its end, validated separately)."""
    kind, n = every
    if kind == "steps":
        return global_step % n == 0
    return step_in_epoch > 0 and step_in_epoch % n == 0


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


@contextlib.contextmanager
def _profiler(enabled: bool, output_dir: Path, ctx: distributed.Context) -> Iterator[Any]:
    """torch.profiler over steps 2-4 (after a warm-up step); a Chrome trace per rank."""
    if not enabled:
        yield None
        return
    from torch.profiler import ProfilerActivity, profile, schedule

    folder = output_dir / "profiler"
    folder.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU]
    if ctx.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)

    def export(prof: Any) -> None:
        prof.export_chrome_trace(str(folder / f"trace-rank{ctx.rank}.json"))
        if ctx.is_main:
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
            (folder / "summary.txt").write_text(table + "\n")
            log.info("profiler trace written to %s", folder)

    with profile(
        activities=activities,
        schedule=schedule(wait=1, warmup=1, active=3, repeat=1),
        on_trace_ready=export,
        record_shapes=True,
    ) as prof:
        yield prof
