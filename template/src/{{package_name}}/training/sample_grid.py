"""What the model answers on a fixed batch of validation images, drawn as a grid.

After a validation (at most every ``trainer.health.sample_predictions_every_s`` seconds: a grid
costs ~50 ms of drawing) and once at the end, the model's answers on the first
``trainer.health.sample_predictions`` validation images go to ``predictions/step-N.png`` in the
run. Only for image tasks, and only where a tracker keeps the file. The answers are decoded by
the task (``tasks/``), so the grid shows what predict would say.
"""

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..tracking.base import Logger
from ..tracking.progress import prediction_grid
from . import precision as amp


class SampleGrid:
    """``after_validation(step)`` and ``finish(step)``: each draws the grid when it is due."""

    def __init__(
        self,
        model: nn.Module,
        samples: tuple[torch.Tensor, torch.Tensor],
        decode: Callable[[torch.Tensor], torch.Tensor],
        logger: Logger,
        output_dir: Path,
        *,
        precision: str,
        every_s: float,
    ) -> None:
        self.model, self.samples, self.decode = model, samples, decode
        self.logger, self.output_dir, self.precision = logger, output_dir, precision
        self.every_s = every_s
        self.drawn_at: float | None = None  # when the last grid was drawn
        self.drawn_step: int | None = None  # and at which step

    def after_validation(self, step: int) -> None:
        if self.drawn_at is None or time.monotonic() - self.drawn_at >= self.every_s:
            self.draw(step)

    def finish(self, step: int) -> None:
        """The final weights' grid, unless the last validation drew it already."""
        if self.drawn_step != step:
            self.draw(step)

    def draw(self, step: int) -> None:
        images, labels = self.samples
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad(), amp.autocast(self.precision, device):
            answers = self.decode(self.model.forward(images.to(device)).float()).cpu()
        self.model.train(was_training)
        confidence, predicted = answers.max(dim=1)
        path = self.output_dir / "predictions" / f"step-{step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        prediction_grid(
            images.float().mean(dim=1).numpy(),
            labels.tolist(),
            predicted.tolist(),
            confidence.tolist(),
            path,
            f"Validation predictions at step {step}",
        )
        self.logger.log_artifact(path, "predictions")
        self.drawn_at, self.drawn_step = time.monotonic(), step
