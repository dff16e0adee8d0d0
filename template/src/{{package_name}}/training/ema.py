"""An exponential moving average (EMA) of the weights: ``trainer.ema.{enabled, decay, warmup}``.

After every optimizer step, ``ema = d * ema + (1 - d) * weights`` for every floating-point entry
of the model's state dict (parameters and buffers such as BatchNorm's running statistics);
integer buffers (``num_batches_tracked``) are copied. With ``warmup`` the decay of the n-th
update (from 0) is ``min(decay, (1 + n) / (10 + n))``, so that the first steps' random weights
fade quickly; without it the average starts from the initial weights at the full decay.

Validation (early stopping, ``best.pt``), the final validation and the test measure the averaged
weights (``applied``) while the raw weights keep training. A checkpoint keeps both: ``model``
(raw, what a resume continues) and ``ema`` (``{"model": <state dict>, "steps": n}``, the same keys
as ``model``); evaluate, predict and export read ``ema`` when it is there
(``models.build.served_weights``, which ``inference.restore_model`` uses).

Hand-written rather than ``torch.optim.swa_utils.AveragedModel`` + ``get_ema_multi_avg_fn``:
that one averages integer buffers too (``lerp`` on int64 fails) unless buffers are left out
(then BatchNorm's statistics are the raw model's), keeps its step count as a tensor (a warmup
would read it back every step: a device sync), deep-copies the module (a compiled or wrapped
one included) and saves its state under ``module.``-prefixed keys. This class keeps plain
tensors and a Python count, and costs one ``_foreach_lerp_`` per step.

Under DDP every rank holds the same weights after a step, so every rank's average is the same
with no communication. Under FSDP (``trainer.strategy=fsdp`` on several processes) each rank
holds a shard: not supported, refused with a ConfigError (``build``).
"""

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from ..errors import CheckpointError, ConfigError

__all__ = ["EMA", "build"]


class EMA:
    """The average of ``model``'s state dict, updated in place by ``update()``."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        self.decay, self.warmup = float(decay), bool(warmup)
        self.steps = 0  # updates so far (the warmup's n)
        # The live tensors (parameters and buffers are updated in place: the references hold).
        self._live = {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()}
        self.averaged = {k: v.clone() for k, v in self._live.items()}
        floats = [k for k, v in self._live.items() if v.is_floating_point()]
        self._floats = ([self.averaged[k] for k in floats], [self._live[k] for k in floats])
        others = [k for k in self._live if k not in set(floats)]
        self._others = ([self.averaged[k] for k in others], [self._live[k] for k in others])

    def rate(self) -> float:
        """The decay the next update uses."""
        if self.warmup:
            return min(self.decay, (1 + self.steps) / (10 + self.steps))
        return self.decay

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (after an optimizer step)."""
        averaged, live = self._floats
        if averaged:
            torch._foreach_lerp_(averaged, live, 1.0 - self.rate())
        for kept, current in zip(*self._others, strict=True):
            kept.copy_(current)
        self.steps += 1

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own again after it
        (copies, so the raw weights come back bit for bit)."""
        raw = {k: v.clone() for k, v in self._live.items()}  # detached: no autograd history
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for key, tensor in self._live.items():
                    tensor.copy_(raw[key])

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Put the averaged weights in the model for good (the end of training)."""
        for key, tensor in self._live.items():
            tensor.copy_(self.averaged[key])

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps as ``ema``: the averaged state dict and the update count."""
        return {"model": self.averaged, "steps": self.steps}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        weights = state["model"]
        if weights.keys() != self.averaged.keys():
            raise KeyError(f"the EMA weights' keys differ from the model's: {sorted(weights)[:3]}")
        for key, tensor in self.averaged.items():
            tensor.copy_(weights[key])
        self.steps = int(state["steps"])


def build(cfg: DictConfig, model: nn.Module, world_size: int) -> EMA | None:
    """The run's EMA of ``model`` (the plain module, not its DDP wrapper), or None when off."""
    settings = cfg.trainer.get("ema")
    if not settings or not settings.enabled:
        return None
    if cfg.trainer.get("strategy") == "fsdp" and world_size > 1:
        raise ConfigError(
            "trainer.ema.enabled=true with trainer.strategy=fsdp: each process holds only a "
            "shard of the weights, and the EMA is not supported on shards. Train with "
            "trainer.strategy=ddp (every rank keeps the whole average), or turn the EMA off "
            "(trainer.ema.enabled=false)."
        )
    return EMA(model, settings.decay, settings.warmup)


def load(ema: EMA | None, saved: dict[str, Any], path: Any) -> str | None:
    """Restore ``ema`` from a checkpoint being resumed; a line to log when it cannot be exact
    (an EMA turned on at a resume starts from the resumed weights)."""
    if ema is None:
        return None
    if "ema" not in saved:
        return (
            f"{path} holds no EMA (trained with trainer.ema.enabled=false): the average starts "
            "from the resumed weights."
        )
    try:
        ema.load_state_dict(saved["ema"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path}: its EMA weights do not fit this run's model ({error}). Resume with the "
            "config it was trained with, or start a new run (ckpt_path=null)."
        ) from None
    return None
