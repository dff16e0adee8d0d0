"""Training-health monitors: cheap enough to leave on, loud when a run goes wrong.

The trainer samples the first optimizer step and every ``trainer.health.every_n_steps``-th after
it; on a sampled step (and only there) this module measures, per layer (a module with
parameters of its own):

- the gradient's L2 norm, before clipping: vanishing below ``vanishing_grad_norm``, exploding
  above ``exploding_grad_norm`` (the norm over all layers);
- the update-to-weight ratio ``|w_after - w_before| / |w_before|`` of the optimizer step
  (around 1e-3 is healthy for Adam-like optimizers; 1e-6 barely learns, 1e-1 is unstable);
- the fraction of dead units of each ``nn.ReLU``: units (features, or channels of images) that
  are zero for every row of the step's batch, seen by forward hooks that are attached for that
  step only (not for compiled models, which would recompile).

On every training-loss log (``log_every_n_steps`` and epoch ends) it watches the loss: a plateau
(the lowest loss improved by less than ``plateau_tolerance`` over the last ``plateau_window``
logs while still above ``plateau_min_progress`` of the way from the start) or divergence (the
loss more than ``divergence_factor`` times its lowest value and above its first). After every
validation it computes the generalisation gap (``val/generalisation_gap = val/loss -
train/loss``, the latest training log), keeps the curves in ``<output_dir>/history.json`` and,
for images in a tracked run, draws the predictions on a fixed validation batch (``sample_grid.py``).

Each problem is logged as a warning once when it appears (again only after it has cleared);
``HealthMonitor.warnings`` keeps them all. Metrics go to the tracker under ``health/``: the
smallest and largest value over the layers, or every layer's with ``per_layer`` (``debug=health``).
Only rank 0 monitors; a non-sampled step costs the trainer one integer comparison.
"""

import json
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..settings import health_settings
from ..tracking.base import Logger, NullLogger
from .sample_grid import SampleGrid

log = logging.getLogger(__name__)

#: The activations whose dead units are counted (outputs exactly zero when inactive).
RELUS = (nn.ReLU, nn.ReLU6)


class HealthMonitor:
    """The trainer's monitors for one run; see the module's docstring for what each measures.

    On sampled steps only (``next_step`` is the next one; -1: none) the trainer calls ``attach``
    before the forward pass, ``before_step`` once the gradients are unscaled (not yet clipped)
    and ``after_step`` once the optimizer has stepped.
    """

    def __init__(
        self,
        model: nn.Module,
        settings: Mapping[str, Any] | None = None,
        logger: Logger | None = None,
        *,
        enabled: bool = True,
        start_step: int = 0,
        output_dir: str | Path | None = None,
        precision: str = "32",
        skips_nonfinite: bool = False,
        samples: tuple[torch.Tensor, torch.Tensor] | None = None,
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        s = health_settings(settings)  # settings.Health's defaults filled in; checked as up front
        self.settings = s
        self.model = model
        self.logger = logger or NullLogger()
        self.active = enabled  # rank 0 only: the other ranks compute the gap and nothing else
        self.every = max(1, int(s["every_n_steps"]))
        self.per_layer = bool(s["per_layer"])
        self.precision = precision
        # fp16 with a gradient scaler: non-finite gradients are expected now and then (the scaler
        # skips that step and lowers its scale); they are not a health problem.
        self.skips_nonfinite = skips_nonfinite
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.warnings: list[tuple[int, str]] = []
        self._firing: set[str] = set()
        self._layers = _layers(model)
        self._grad_norms: dict[str, float] = {}
        self._before: list[torch.Tensor] = []
        self._hooks: list[Any] = []
        self._alive: dict[str, torch.Tensor] = {}
        self._dead: dict[str, float] = {}
        self._skip = False
        self.history: dict[str, list[dict[str, float]]] = _read_history(self.output_dir, start_step)
        self._first: float | None = None
        self._best: tuple[int, float] | None = None
        self._window: deque[tuple[int, float]] = deque()
        self._earlier: float | None = None  # the lowest loss before the window
        for row in self.history["train"]:  # a resumed run continues its trends
            if isinstance(row.get("train/loss"), float) and math.isfinite(row["train/loss"]):
                self._track(int(row["step"]), row["train/loss"])  # steps are saved as ints
        # The fixed validation batch drawn after validations: only where a tracker keeps it.
        k = int(s["sample_predictions"] or 0)
        tracked = not isinstance(self.logger, NullLogger) and self.output_dir is not None
        self.grid = None
        if self.active and tracked and samples is not None and decode is not None and k > 0:
            assert self.output_dir is not None
            self.grid = SampleGrid(
                model, (samples[0][:k], samples[1][:k]), decode, self.logger, self.output_dir,
                precision=precision, every_s=float(s["sample_predictions_every_s"]),
            )  # fmt: skip
        monitors = self.active and bool(s["enabled"])
        self.next_step = self._following(start_step) if monitors else -1

    # ---- sampled steps -----------------------------------------------------------------------

    def attach(self) -> None:
        """Forward hooks on every ReLU, for this step's forward passes only (``before_step``
        removes them). Not for a compiled model: new hooks would make it recompile."""
        if self._hooks or getattr(self.model, "_compiled_call_impl", None) is not None:
            return
        self._alive = {}
        for name, module in self.model.named_modules():
            if isinstance(module, RELUS):
                self._hooks.append(module.register_forward_hook(self._recorder(name)))

    def before_step(self) -> None:
        """Per-layer gradient norms (unscaled, before clipping), the dead units of the step's
        forward passes, and the weights before the optimizer changes them."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        norms = []
        for _, params in self._layers:
            grads = [_local(p.grad) for p in params if p.grad is not None]
            if grads:
                norms.append(_norm(grads))
            else:  # not in this step's graph
                norms.append(torch.full((), math.nan, device=params[0].device))
        dead = [1.0 - alive.float().mean() for alive in self._alive.values()]
        values = _floats(norms + dead)  # one transfer from the device
        grad_norms, dead_values = values[: len(norms)], values[len(norms) :]
        self._grad_norms = {
            name: value
            for (name, _), value in zip(self._layers, grad_norms, strict=True)
            if not math.isnan(value)
        }
        self._dead = dict(zip(self._alive, dead_values, strict=True))
        self._alive = {}
        self._skip = self.skips_nonfinite and not all(map(math.isfinite, grad_norms))
        self._before = [_local(p.detach()).clone() for _, params in self._layers for p in params]

    def after_step(self, step: int) -> int:
        """Update ratios; warns, logs; returns the next step to sample."""
        self.next_step = self._following(step)
        if self._skip:  # the gradient scaler skipped this step: nothing to measure
            self._before = []
            return self.next_step
        ratios = self._update_ratios()
        self._check_gradients(step)
        for name, fraction in self._dead.items():
            self._flag(
                f"dead:{name}",
                fraction > self.settings["dead_fraction"],
                step,
                f"{fraction:.0%} of the units of ReLU {name} are dead (zero on every row of the "
                f"batch) at step {step}. Usual causes: a learning rate too high, a large "
                "negative bias, bad initialisation; try a lower optimizer.lr or LeakyReLU/GELU.",
            )
        metrics = self._summary("grad_norm", self._grad_norms)
        metrics |= self._summary("update_ratio", ratios)
        metrics |= self._summary("dead_fraction", self._dead, smallest=False)
        metrics["health/warnings"] = float(len(self.warnings))
        self.logger.log_metrics(metrics, step=step)
        return self.next_step

    def _recorder(self, name: str):
        def record(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor) or output.dim() < 2:
                return
            # Units: the last dimension of (rows, features) and (rows, time, features); the
            # channels (dimension 1) of images and volumes. Alive: above zero for some row.
            unit = 1 if output.dim() > 3 else output.dim() - 1
            dims = [d for d in range(output.dim()) if d != unit]
            alive = output.detach().amax(dim=dims) > 0  # (a float amax is 40x a boolean's)
            # Over all micro-batches of the step (gradient accumulation).
            self._alive[name] = alive | self._alive[name] if name in self._alive else alive

        return record

    # ---- losses and validations --------------------------------------------------------------

    def observe_loss(self, step: int, loss: float) -> None:
        """A training-loss log: warn when the loss plateaus or diverges."""
        if not self.active:
            return
        self.history["train"].append({"step": step, "train/loss": loss})
        if not (self.settings["enabled"] and math.isfinite(loss)):
            return
        first, (best_step, best) = self._track(step, loss)
        factor = float(self.settings["divergence_factor"])
        self._flag(
            "diverging",
            loss > factor * best and loss > first,
            step,
            f"the training loss is diverging: {loss:.4g} at step {step}, up from {best:.4g} at "
            f"step {best_step} (more than {factor:g}x). Lower optimizer.lr, add warmup, or "
            "clip gradients (trainer.gradient_clip_val).",
        )
        if self._earlier is None:  # not yet more logs than a window
            return
        window = self._window
        recent = min(value for _, value in window)
        gain = (self._earlier - recent) / max(abs(self._earlier), 1e-12)
        progress = (first - recent) / max(abs(first), 1e-12)
        tolerance = float(self.settings["plateau_tolerance"])
        stuck = gain < tolerance and progress < float(self.settings["plateau_min_progress"])
        self._flag(
            "plateau",
            stuck,
            step,
            f"the training loss has plateaued at {recent:.4g}: less than {tolerance:.0%} better "
            f"over the last {len(window)} logs (step {window[0][0]} to {step}), "
            f"{progress:.0%} below where it started. Try a higher optimizer.lr, another "
            "scheduler, or a larger model (underfitting); check the data and the labels.",
        )

    def on_validation(
        self, step: int, train_metrics: Mapping[str, float], val_metrics: Mapping[str, float]
    ) -> dict[str, float]:
        """The generalisation gap (every rank); history and sample predictions (rank 0)."""
        gap = {}
        # Like with like: under distillation train/loss is a blend, train/task_loss the task's.
        train_loss = train_metrics.get("train/task_loss", train_metrics.get("train/loss"))
        if train_loss is not None and "val/loss" in val_metrics:
            gap["val/generalisation_gap"] = val_metrics["val/loss"] - train_loss
        if not self.active:
            return gap
        self.history["val"].append({"step": step, **val_metrics, **gap})
        self.write_history()
        if self.grid is not None:
            self.grid.after_validation(step)
        return gap

    def finish(self, step: int | None = None) -> None:
        """The history on disk, the final weights' grid, and the warnings recalled in the log."""
        if not self.active:
            return
        self.write_history()
        if self.grid is not None and step is not None:
            self.grid.finish(step)
        if self.warnings:
            log.warning(
                "training health: %d warning(s) in this run, the first at step %d: %s",
                len(self.warnings),
                self.warnings[0][0],
                self.warnings[0][1],
            )

    def write_history(self) -> None:
        if self.output_dir is None:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        finite = {
            key: [{k: v if math.isfinite(v) else None for k, v in row.items()} for row in rows]
            for key, rows in self.history.items()
        }
        text = json.dumps(finite, indent=1)
        (self.output_dir / "history.json").write_text(text + "\n", encoding="utf-8")

    # ---- helpers -----------------------------------------------------------------------------

    def _track(self, step: int, loss: float) -> tuple[float, tuple[int, float]]:
        """Keep the first and lowest loss, the last ``plateau_window`` logs and the lowest loss
        before them (constant work per log, however long the run)."""
        if self._first is None:
            self._first = loss
        if self._best is None or loss < self._best[1]:
            self._best = (step, loss)
        self._window.append((step, loss))
        if len(self._window) > int(self.settings["plateau_window"]):
            _, left = self._window.popleft()
            self._earlier = left if self._earlier is None else min(self._earlier, left)
        return self._first, self._best

    def _following(self, step: int) -> int:
        """The next sampled step after ``step``: step 1, then every ``every``-th."""
        if step < 1:
            return 1
        return (step // self.every + 1) * self.every

    def _update_ratios(self) -> dict[str, float]:
        params = [_local(p.detach()) for _, ps in self._layers for p in ps]
        if not params:
            return {}
        deltas = [(p - b).norm() for p, b in zip(params, self._before, strict=True)]
        weights = [b.norm() for b in self._before]
        self._before = []
        values = _floats(deltas + weights)
        moved, sizes = values[: len(deltas)], values[len(deltas) :]
        ratios, i = {}, 0
        for name, ps in self._layers:
            delta = math.sqrt(sum(v * v for v in moved[i : i + len(ps)]))
            weight = math.sqrt(sum(v * v for v in sizes[i : i + len(ps)]))
            i += len(ps)
            if name in self._grad_norms:
                ratios[name] = delta / weight if weight > 0 else math.inf
        return ratios

    def _check_gradients(self, step: int) -> None:
        norms = self._grad_norms
        if not norms:
            return
        low = float(self.settings["vanishing_grad_norm"])
        vanishing = sorted(name for name, value in norms.items() if value < low)
        for name in norms:
            self._flag(
                f"vanishing:{name}",
                name in vanishing,
                step,
                f"vanishing gradients in layer {name}: L2 norm {norms[name]:.2g} < {low:g} at step "
                f"{step}; its weights barely change. Usual causes: saturated activations "
                "(sigmoid, tanh), a layer after it that scales its signal to nothing, too deep "
                "a stack without residual connections or normalisation.",
            )
        total = math.sqrt(sum(v * v for v in norms.values()))
        high = float(self.settings["exploding_grad_norm"])
        largest = max(norms, key=lambda name: norms[name])
        self._flag(
            "exploding",
            not total <= high,  # NaN counts as exploding
            step,
            f"exploding gradients: L2 norm {total:.3g} > {high:g} at step {step} (largest in "
            f"layer {largest}: {norms[largest]:.3g}). Lower optimizer.lr, clip gradients "
            "(trainer.gradient_clip_val), or check the data for extreme values.",
        )

    def _flag(self, key: str, condition: bool, step: int, message: str) -> None:
        """Warn when ``condition`` becomes true; once, until it has been false again."""
        if not condition:
            self._firing.discard(key)
        elif key not in self._firing:
            self._firing.add(key)
            self.warnings.append((step, message))
            log.warning("training health: %s", message)

    def _summary(
        self, name: str, values: Mapping[str, float], smallest: bool = True
    ) -> dict[str, float]:
        if not values:
            return {}
        finite = [v for v in values.values() if math.isfinite(v)] or [math.inf]
        out = {f"health/{name}_max": max(finite)}
        if smallest:
            out[f"health/{name}_min"] = min(finite)
        if self.per_layer:
            out |= {f"health/{name}/{layer}": value for layer, value in values.items()}
        return {k: v for k, v in out.items() if math.isfinite(v)}


def _layers(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """``(name, its own trainable parameters)`` of every module that has any."""
    layers = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if params:
            layers.append((name or "model", params))
    return layers


def _floats(tensors: list[torch.Tensor]) -> list[float]:
    """Scalar tensors as floats, in one transfer when they share a device."""
    if not tensors:
        return []
    if len({t.device for t in tensors}) > 1:
        tensors = [t.cpu() for t in tensors]
    return torch.stack([t.float() for t in tensors]).tolist()


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of an FSDP parameter or gradient (a DTensor), else the tensor: the
    monitors run on rank 0 alone, so under FSDP they measure rank 0's shards (no collective)."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if to_local is not None else tensor


def _norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def _read_history(output_dir: Path | None, start_step: int) -> dict[str, list[dict[str, float]]]:
    """A resumed run's curves up to where it resumes (empty when starting afresh)."""
    history: dict[str, list[dict[str, float]]] = {"train": [], "val": []}
    path = output_dir / "history.json" if output_dir is not None else None
    if start_step > 0 and path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            for key in history:
                history[key] = [row for row in saved.get(key, []) if row["step"] <= start_step]
        except (ValueError, KeyError, TypeError):
            log.warning("%s cannot be read; the curves start again at step %d", path, start_step)
    return history
