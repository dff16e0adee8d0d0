"""A trained network with its input scaling and its output transform: raw rows in, answers out.

``Predictor`` is what ``predict`` runs and what ``export`` saves: it scales raw feature rows as
``data.prepare`` does (``(x - offset) / scale``, in float64, with the training split's statistics
that the checkpoint keeps as ``feature_scale``), reshapes them to images where the data has an
``image_shape``, runs the network and returns class probabilities (classification) or values in
the target's own units (regression: the trainer standardised the targets, this undoes it).
"""

from collections.abc import Sequence

import torch
from torch import nn


class Predictor(nn.Module):
    """``forward(rows)``: rows of raw features ``(n, features)`` -> ``(n, classes)`` or ``(n,)``."""

    def __init__(
        self,
        model: nn.Module,
        offset: Sequence[float],
        scale: Sequence[float],
        image_shape: Sequence[int] | None = None,
        target_scale: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("offset", torch.tensor(list(offset), dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(list(scale), dtype=torch.float64))
        self.image_shape = tuple(int(d) for d in image_shape) if image_shape else None
        self.classification = target_scale is None
        self.target_mean = float(target_scale["mean"]) if target_scale else 0.0
        self.target_std = float(target_scale["std"]) if target_scale else 1.0

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        inputs = ((rows.double() - self.offset) / self.scale).float()
        if self.image_shape is not None:
            inputs = inputs.reshape(inputs.shape[0], *self.image_shape)
        outputs = self.model(inputs).float()
        if self.classification:
            return outputs.softmax(dim=1)
        return outputs.squeeze(1).double() * self.target_std + self.target_mean
