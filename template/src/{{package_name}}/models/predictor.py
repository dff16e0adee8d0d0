"""A trained network with its input preprocessing and its output transform: raw input in, answers
out. What ``predict`` runs and what ``export`` saves.

- ``Predictor`` (tables): scales raw feature rows as ``data.prepare`` does (``(x - offset) /
  scale``, in float64, with the training split's statistics that the checkpoint keeps as
  ``feature_scale``).
- ``ImagePredictor`` (images): raw pixels in ``data.pixel_range`` units go through the
  ``Preprocess`` the data loaders applied in training (``data/images.py``, built again from the
  checkpoint's config: pixel range, ``data.image_shape``, ``data.resize``).

Both then run the network and decode its outputs with the task's ``decode`` (``tasks/``): class
probabilities, or values in the target's own units.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn


class Predictor(nn.Module):
    """``forward(rows)``: rows of raw features ``(n, features)`` -> ``decode``'s answers."""

    offset: torch.Tensor  # buffers (register_buffer), typed for the type checker
    scale: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        offset: Sequence[float],
        scale: Sequence[float],
        decode: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("offset", torch.tensor(list(offset), dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(list(scale), dtype=torch.float64))
        self.decode = decode  # the task's: softmax, or un-standardising (traced by export)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        inputs = ((rows.double() - self.offset) / self.scale).float()
        return self.decode(self.model(inputs))


class ImagePredictor(nn.Module):
    """``forward(pixels)``: raw pixels ``(n, C, H, W)`` -> ``decode``'s answers.

    ``preprocess`` is the training data's ``Preprocess``; ``answers(images)`` takes images that
    are already preprocessed (``predict`` preprocesses files one by one, as their sizes may
    differ, then stacks them).
    """

    def __init__(
        self,
        model: nn.Module,
        preprocess: nn.Module,
        decode: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        super().__init__()
        self.model = model
        self.preprocess = preprocess
        self.decode = decode

    def answers(self, images: torch.Tensor) -> torch.Tensor:
        """Answers for preprocessed images ``(n, C, H, W)`` in [0, 1] of ``data.image_shape``."""
        return self.decode(self.model(images))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.answers(self.preprocess(pixels))


class TextPredictor(nn.Module):
    """``forward(ids)``: token ids ``(n, L)`` int64 (the checkpoint's tokenizer, padded with 0)
    -> ``decode``'s answers. Tokenizing stays outside: ``predict`` and an exported program's
    user tokenize with the tokenizer the checkpoint carries."""

    def __init__(self, model: nn.Module, decode: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.decode = decode

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decode(self.model(ids))
