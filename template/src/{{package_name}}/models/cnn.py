"""A small convolutional network: the example network for images."""

from collections.abc import Sequence

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Convolution blocks, global average pooling and a linear classifier.

    Each block is ``Conv3x3 -> BatchNorm -> ReLU -> MaxPool2``, halving the image; the global
    pooling makes the classifier independent of the input size (8x8 digits or larger images).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        channels: Sequence[int] = (32, 64),
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SmallCNN needs num_classes >= 2, got {num_classes}")
        if not channels:
            raise ValueError("SmallCNN needs at least one convolution block (channels is empty)")
        blocks: list[nn.Module] = []
        width = in_channels
        for out in channels:
            blocks += [
                nn.Conv2d(width, out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            width = out
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
