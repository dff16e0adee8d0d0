"""A trained network with its input scaling and its output transform: raw rows in, answers out.

``Predictor`` is what ``predict`` runs and what ``export`` saves: it scales raw feature rows as
``data.prepare`` does (``(x - offset) / scale``, in float64, with the training split's statistics
that the checkpoint keeps as ``feature_scale``), reshapes them to images where the data has an
``image_shape``, runs the network and decodes its outputs with the task's ``decode``
(``tasks/``): class probabilities, or values in the target's own units.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn


class Predictor(nn.Module):
    """``forward(rows)``: rows of raw features ``(n, features)`` -> ``decode``'s answers."""

    def __init__(
        self,
        model: nn.Module,
        offset: Sequence[float],
        scale: Sequence[float],
        image_shape: Sequence[int] | None,
        decode: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("offset", torch.tensor(list(offset), dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(list(scale), dtype=torch.float64))
        self.image_shape = tuple(int(d) for d in image_shape) if image_shape else None
        self.decode = decode  # the task's: softmax, or un-standardising (traced by export)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        inputs = ((rows.double() - self.offset) / self.scale).float()
        if self.image_shape is not None:
            inputs = inputs.reshape(inputs.shape[0], *self.image_shape)
        return self.decode(self.model(inputs))
