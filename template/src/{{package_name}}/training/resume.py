"""Resuming under a changed config: what may change, what is applied, what is refused.

A resume continues a run where it stopped, with the state the checkpoint holds (weights,
optimizer moments, learning-rate schedule, data order, random states). Most config values only
shaped that state when the run started, so an override of one of them on resume would be
silently ignored, or would break the load with a traceback. The checkpoint keeps the config it
was trained with; ``changes`` compares it with the current one, key by key, and sorts each
difference into one of three kinds:

- not compared: where the run lives and how it is tracked (``paths``, ``logger``, ``ckpt_path``,
  ``hydra``, ``hparams_search``), and values masked as secrets (``***``) in the checkpoint;
- applied, each with a logged line saying what happens: how long to train (``trainer.max_epochs``,
  ``trainer.max_steps``, ``trainer.early_stopping.*``), ``optimizer.lr`` (the schedule keeps its
  shape, scaled to the new rate: the usual move after a divergence) and how the run is logged,
  validated, checked and saved (``APPLIED``);
- the same: a key the checkpoint's config does not have, at its schema default (a key a later
  version of the project added: the older run behaved as its default says);
- refused with exit code 3 (``CheckpointError``), naming every such key with its old and new
  value: everything else (the model, the optimizer's class and other arguments, the scheduler,
  the data, ``seed``, the batch size, precision, accumulation, clipping, ...). A resume that
  applied them would be neither the old run nor a new one.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import MISSING

from .. import settings
from ..errors import CheckpointError
from ..tracking.run_info import MASK, flatten

#: Never compared: they may differ between the two halves of one run (another folder, store).
NOT_COMPARED = ("paths", "logger", "ckpt_path", "hydra", "hparams_search")

#: Recorded by the trainer, not given: compared only where both configs hold them (the check
#: before the trainer starts has none yet). A resume with another teacher file is refused.
RECORDED = ("distillation.teacher_md5",)

#: Applied on resume: they say how long, how watched and how saved, not what is trained.
APPLIED = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.early_stopping",
    "optimizer.lr",
    "trainer.accelerator",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "trainer.val_check_interval",
    "trainer.check_val_every_n_epoch",
    "trainer.limit_val_batches",
    "trainer.test_after_fit",
    "trainer.profiler",
    "trainer.health",
    "trainer.compile",
    "trainer.channels_last",
    "trainer.deterministic",
    "data.num_workers",
    "checkpoint",
)

#: What an applied change does, where there is more to say than "applied".
_EFFECTS = {
    "trainer.max_epochs": "training continues to the new length; the learning-rate schedule is "
    "recomputed for it from this step on",
    "trainer.max_steps": "training continues to the new length; the learning-rate schedule is "
    "recomputed for it from this step on",
    "optimizer.lr": "the learning rate from this step on is scaled by new/old; the schedule "
    "keeps its shape",
}

_ABSENT = "<absent>"


def within(key: str, prefixes: Iterable[str]) -> bool:
    """Whether ``key`` is one of ``prefixes`` or below one of them."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _masked(value: Any) -> bool:
    return isinstance(value, str) and MASK in value


def changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (old, new)}`` for every compared key whose value differs (or exists on one side)."""
    old, new = flatten(saved), flatten(current)
    found = {}
    for key in sorted(old.keys() | new.keys()):
        if within(key, NOT_COMPARED):
            continue
        before, after = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if within(key, RECORDED) and _ABSENT in (before, after):
            continue
        if before == after or _masked(before) or _masked(after):
            continue
        if before is _ABSENT and _is_default(key, after):
            continue  # a key a later version added: the older run ran as its default says
        found[key] = (before, after)
    return found


def _is_default(key: str, value: Any) -> bool:
    default = settings.default_of(key)
    return default is not MISSING and default == value


def check(saved: Mapping[str, Any] | None, current: Mapping[str, Any], path: Any) -> list[str]:
    """Refuse changes a resume cannot honour; return one line per change it applies.

    ``saved`` is the checkpoint's config (None for a checkpoint that has none: not compared).
    """
    if not saved:
        return []
    differing = changes(saved, current)
    refused = {k: v for k, v in differing.items() if not within(k, APPLIED)}
    if refused:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in refused.items())
        raise CheckpointError(
            f"cannot resume from {path} with a changed config: {listed}. The checkpoint's "
            "state was trained with the old values, which a resume would silently keep or "
            "fail to load. Resume with the old values (drop these overrides), or start a new "
            "run with the new ones in another folder (ckpt_path=null paths.output_dir=<new "
            "folder>). A resume may change only how long it trains (trainer.max_epochs, "
            "trainer.max_steps, trainer.early_stopping.*), optimizer.lr, and how the run is "
            "logged, validated and saved (docs: training, 'Resuming with other values')."
        )
    return [
        f"resume: {key} changed since the checkpoint, {old!r} -> {new!r}: applied"
        + (f"; {_EFFECTS[key]}" if key in _EFFECTS else "")
        for key, (old, new) in differing.items()
    ]


def apply_lr(optimizer: Any, scheduler: Any, old_lr: float, new_lr: float) -> None:
    """Scale the restored learning rates by ``new_lr / old_lr``: the schedule keeps its shape.

    The optimizer's param groups and the scheduler's base rates are what a resumed run steps
    from (the config's ``lr`` was read once, when the run started); a ``LambdaLR`` computes each
    step's rate as base rate x factor(step), so scaling both continues the same curve, scaled.
    """
    ratio = new_lr / old_lr
    for group in optimizer.param_groups:
        group["lr"] *= ratio
        if "initial_lr" in group:
            group["initial_lr"] *= ratio
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [rate * ratio for rate in scheduler.base_lrs]
    if hasattr(scheduler, "_last_lr"):
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
