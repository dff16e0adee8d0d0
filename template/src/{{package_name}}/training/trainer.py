"""The training loop: one function, ``fit``, that reads top to bottom.

set up -> data and the plan -> model, optimizer, scheduler, scaler -> resume -> for each
optimizer step: forward and backward over ``accumulate_grad_batches`` micro-batches, clip, step,
log, validate, checkpoint, stop? -> test -> metrics.json.

The policies live in parts the loop calls by name: ``plan.py`` (how many steps, which batches;
the debug modes are presets of it), ``window.py`` (the loss window: throughput and the NaN
guard at log points), ``validator.py`` (when to validate, the task's metrics, early stopping),
``checkpointer.py`` (resume, when to save, the best checkpoint) and ``health.py`` (gradient,
update and dead-unit monitors on the first step and every ``trainer.health.every_n_steps``-th).
What depends on the kind of task (the loss, the target encoding, the metrics) is the task's
(``tasks/``).

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from .. import tasks
from ..config import as_dict
from ..data.augmentation import on_device
from ..errors import Interrupted
from ..models.build import instantiate as _instantiate
from ..models.build import load_pretrained, without_dropout
from ..tracking.base import Logger, NullLogger
from ..tracking.run_info import flatten
from . import checkpoint, distillation, distributed, finetuning, fsdp, loading, sharded
from . import ema as averaging
from . import precision as amp
from .checkpointer import Checkpointer, TrainerState
from .health import HealthMonitor
from .plan import Plan
from .profiler import profile_steps
from .splits import fit_task, load_shards, splits
from .validator import Validator, evaluate
from .window import LossWindow

__all__ = ["Stopped", "TrainerState", "fit"]

log = logging.getLogger(__name__)


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
    # ---- settings, data and the plan, model, optimizer, scheduler, the loop's parts ---------
    ctx = ctx or distributed.setup(cfg.trainer.accelerator)
    logger = logger if (logger is not None and ctx.is_main) else NullLogger()
    t, device, output_dir = cfg.trainer, ctx.device, Path(output_dir)
    precision = amp.check(t.precision)
    task = tasks.for_data(cfg.data)  # the loss, the target encoding, the metrics
    _seed_everything(cfg.seed, t.deterministic)  # the same initial weights on every rank
    data = splits(cfg, task, ctx)
    run = data.plan  # the debug modes are presets of it
    fit_task(task, data.train_set)  # what encode needs (regression: the mean and std)
    model, net = _model(cfg, run, ctx)
    # The loss of a micro-batch: the task's, or blended with a teacher's outputs (distillation).
    criterion = distillation.criterion(cfg, task, precision, device, data.feature_scale)
    cfg = criterion.recorded(cfg)  # the teacher's md5 beside its path: checkpoints, params
    optimizer = finetuning.optimizer(_instantiate(cfg.optimizer, "optimizer"), model)
    scheduler = _instantiate(cfg.scheduler, "scheduler")(optimizer, total_steps=run.total_steps)
    scaler = amp.grad_scaler(precision, device)
    ema = averaging.build(cfg, model, ctx.world_size)  # trainer.ema: None when off
    ckpt = Checkpointer(
        cfg, ctx, output_dir, enabled=run.checkpoints, model=model, optimizer=optimizer,
        scheduler=scheduler, scaler=scaler, task=task, feature_scale=data.feature_scale, ema=ema,
    )  # fmt: skip
    validator = Validator(t, run.steps_per_epoch, task, precision, device)
    window = LossWindow(ctx, run.batch_size, ckpt.guard)
    state = ckpt.resume(window, validator)  # states, random states, logs; None: a new run
    if state is None:
        state = TrainerState()
        _seed_everything(cfg.seed + ctx.rank)  # different dropout masks on different ranks
    state.run_id = getattr(logger, "run_id", None) or state.run_id  # continued, or a new one
    # A new run (a resumed one too, when its own run is in another store: tracking/base.py).
    if ctx.is_main and (state.global_step == 0 or getattr(logger, "resumed", True) is False):
        logger.log_params(flatten(as_dict(cfg, resolve=True)))
    bar = _progress(run.total_steps, state.global_step, ctx.is_main and t.enable_progress_bar)
    grid = task.images and not ckpt.sharded  # drawn by rank 0 alone: not with a sharded model
    health = HealthMonitor(  # gradients, updates, dead units, loss trends: see health.py
        model, t.get("health"), logger, enabled=ctx.is_main, start_step=state.global_step,
        output_dir=output_dir, precision=precision, skips_nonfinite=scaler.is_enabled(),
        samples=loading.first_rows(data.val_set, t.health) if grid else None,
        decode=task.decode,
    )  # fmt: skip
    health_at = health.next_step  # the next optimizer step it measures (-1: none)
    # Read once: config lookups in the hot loop cost microseconds.
    clip, accumulate, channels_last = t.gradient_clip_val, run.accumulate, bool(t.channels_last)
    stop, agreement = distributed.StopFlag(), distributed.Agreement()
    augment = on_device(cfg, ctx.rank, ctx.world_size, device)  # else a pass-through

    # ---- the loop -----------------------------------------------------------------------------
    # ``ckpt``: its exit waits for an asynchronous checkpoint write (checkpoint.async_save).
    with stop, ckpt, profile_steps(t.profiler, output_dir, ctx) as profiler:
        while run.keep_going(state.global_step, state.epoch, state.stopped_early):
            data.set_epoch(state.epoch, skip=state.batch_in_epoch)  # the order, the augmentation
            loading.reseed(data.train, cfg.seed + state.epoch)
            finetuning.at_epoch(model, state.epoch)  # a frozen backbone is released at its epoch
            net.train()
            for index, (inputs, targets) in enumerate(data.train, start=state.batch_in_epoch):
                inputs, targets = _to(inputs, targets, device, channels_last)
                inputs = augment(inputs, state.epoch, index)  # data.augment_on: device
                step_ends = (index + 1) % accumulate == 0
                sampled = state.global_step + 1 == health_at  # a step the monitors measure
                if sampled:
                    health.attach()  # forward hooks on the ReLUs (dead units), this step only
                with fsdp.no_sync(net, skip=not step_ends):  # DDP's no_sync, FSDP's, or none
                    with amp.autocast(precision, device):
                        outputs = net(inputs)
                    loss = criterion(outputs, inputs, targets)
                    scaler.scale(loss / accumulate if accumulate > 1 else loss).backward()
                window.add(loss)  # checked at every log point and before every save
                if not step_ends:
                    continue

                # -- optimizer step: unscale, clip, step, update the scale, schedule, zero --
                scaler.unscale_(optimizer)
                if sampled:
                    health.before_step()  # per-layer gradient norms (before clipping), weights
                log_now = (state.global_step + 1) % run.log_every == 0
                grad_norm = None
                if clip is not None or log_now:
                    limit = clip if clip is not None else math.inf
                    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), limit)
                    grad_norm = fsdp.whole_tensor(grad_norm)  # FSDP: a DTensor, made whole
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update()  # the average of the weights (trainer.ema)
                state.global_step += 1
                if sampled:
                    health_at = health.after_step(state.global_step)  # update ratios, warnings
                epoch_ends = index + 1 == run.train_batches
                state.epoch += int(epoch_ends)
                state.batch_in_epoch = 0 if epoch_ends else index + 1
                if profiler is not None:
                    profiler.step()
                bar.update(1)

                # -- log ------------------------------------------------------------------------
                if log_now or epoch_ends:
                    lr = optimizer.param_groups[0]["lr"]
                    logged = window.read(state.global_step, state.epoch, lr, grad_norm)
                    logged |= finetuning.learning_rates(optimizer)  # the backbone's, if any
                    logged |= criterion.read()  # distillation: train/task_loss, train/kd_loss
                    logger.log_metrics(logged, step=state.global_step)
                    health.observe_loss(state.global_step, logged["train/loss"])
                    bar.set_postfix(loss=f"{logged['train/loss']:.4f}", refresh=False)

                # -- validate, keep the best, stop early ----------------------------------------
                window.pause()  # throughput counts training time only
                step_in_epoch = state.batch_in_epoch // accumulate
                if validator.due(state.global_step, state.epoch, epoch_ends, step_in_epoch):
                    with _averaged(ema):  # the EMA weights, when there is one
                        val_metrics = validator.measure(net, data.val)
                    gap = health.on_validation(state.global_step, window.metrics, val_metrics)
                    val_metrics |= gap  # val/generalisation_gap
                    validator.step, validator.metrics = state.global_step, val_metrics
                    logger.log_metrics(val_metrics, step=state.global_step)
                    if validator.early_stopping.update(state, val_metrics):
                        ckpt.save_best(state, window, validator, epoch_ends)
                    if on_validation is not None:
                        on_validation(state.global_step, val_metrics)

                # -- checkpoint, and stop on a signal (every rank at the same step) -------------
                signalled = agreement.poll(stop.raised)
                finished = not run.keep_going(state.global_step, state.epoch, state.stopped_early)
                path = None
                if ckpt.due(state.global_step, epoch_ends, finished, signalled):
                    path = ckpt.save(state, window, validator)
                if signalled:
                    bar.close()
                    raise Stopped(stop.signal or 15, state.global_step, path, output_dir)
                window.resume()
                if finished:
                    break
    agreement.close()
    bar.close()
    ckpt.guard.check(window.loss, model, optimizer, state.global_step)  # no metrics.json of NaN
    if ema is not None:
        ema.copy_to_model()  # from here on the model is the average: validated, tested, recorded
    health.finish(state.global_step)  # history.json, last grid, warnings recalled in the log

    # ---- final validation and test, with the best weights ---------------------------------
    val_metrics = validator.metrics
    if validator.step != state.global_step:  # the final weights have not been validated yet
        val_metrics = validator.measure(net, data.val)
    metrics = {**window.metrics, **val_metrics, "step": float(state.global_step)}
    if t.test_after_fit:
        best_path = ckpt.folder / "best.pt"
        if run.checkpoints and ckpt.sharded and (ckpt.folder / "best").is_dir():
            sharded.load(model, None, ckpt.folder / "best")  # every rank its shards
        elif run.checkpoints and best_path.is_file():
            model.load_state_dict(checkpoint.weights(checkpoint.load_file(best_path)))
        test = load_shards(cfg, task, run, ctx, "test")
        metrics.update(evaluate(net, test, "test", task, precision, device))
    if task.text and ckpt.sharded:  # rank 0 measures alone: a whole copy (a collective)
        whole = fsdp.gather_whole(model, lambda: tasks.build_model(cfg).to(device), ctx.is_main)
    else:
        whole = model
    if ctx.is_main and task.text:  # tokenizer, shape, inference times, sample predictions
        _record_text(cfg, whole, task, data.val_set, logger, state.global_step, device)
    if ctx.is_main:
        logger.log_metrics(metrics, step=state.global_step)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# ---- building blocks ----------------------------------------------------------------------------


def _to(
    inputs: torch.Tensor, targets: torch.Tensor, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = inputs.to(device, non_blocking=True)
    targets = targets.to(device, non_blocking=True)
    if channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, targets


def _averaged(ema: averaging.EMA | None) -> contextlib.AbstractContextManager[Any]:
    return ema.applied() if ema is not None else contextlib.nullcontext()


def _model(cfg: DictConfig, run: Plan, ctx: distributed.Context) -> tuple[nn.Module, nn.Module]:
    """The model on its device, and the module to call: itself, its DDP wrapper, or itself
    sharded by FSDP (``fsdp.py``)."""
    model = tasks.build_model(cfg)
    load_pretrained(model)  # a backbone's weights (a hub, a file): a new run's starting point
    model = model.to(ctx.device)
    if not run.dropout:
        without_dropout(model)  # learning one batch by heart: dropout would only blur it
    if cfg.trainer.channels_last:
        # Module.to takes memory_format (documented); torch's overloads of it leave it out.
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if cfg.trainer.compile:
        model.compile()  # in place: the state-dict keys stay those of the plain model
    if ctx.world_size == 1:
        if cfg.trainer.get("strategy") == "fsdp":
            log.info("trainer.strategy=fsdp is ignored in one process: nothing to shard")
        return model, model
    if cfg.trainer.get("strategy") == "fsdp":  # sharded in place: the model is the module to call
        model = fsdp.shard(model, amp.check(cfg.trainer.precision), cfg.trainer.fsdp)
        return model, model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    unused = finetuning.freezes(model)  # a frozen backbone's parameters get no gradient
    return model, nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=unused
    )


def _record_text(
    cfg: DictConfig, model: nn.Module, task: Any, val_set: Any, logger: Logger, step: int,
    device: torch.device,
) -> None:  # fmt: skip
    """The text records of ``tracking/records.py`` on the validation split, with the weights the
    run ends with: the best checkpoint's when the test split was measured with them, else the
    last. The random state is kept: measuring draws nothing, but a model might."""
    from ..data.text import TEXT_FILE, read_text_record
    from ..tracking.records import record_text_model

    processed = Path(cfg.paths.processed_dir)
    names = cfg.data.get("class_names")
    if not names and (processed / TEXT_FILE).is_file():
        names = read_text_record(processed).get("class_names")
    with torch.random.fork_rng(devices=[]):
        recorded = record_text_model(
            logger, model, val_set, task.tokenizer, class_names=names,
            batch_size=int(cfg.data.batch_size),
            samples=int((cfg.trainer.get("health") or {}).get("sample_predictions") or 0),
            device=device, step=step,
        )  # fmt: skip
    log.info(
        "text model: %s parameters; inference %.2f ms per batch of %d, %.2f ms per text alone",
        f"{recorded['text.parameters']:,}", recorded["inference/ms_per_batch"],
        int(cfg.data.batch_size), recorded["inference/ms_per_sample_alone"],
    )  # fmt: skip


def _seed_everything(seed: int, deterministic: bool = False) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global generator users may call)
    torch.manual_seed(seed)


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        disable=not enabled,  # its calls then cost ~0.2 us
    )
