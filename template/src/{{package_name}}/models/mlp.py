"""A multilayer perceptron: the example network for tabular features."""

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """``[Linear -> ReLU -> Dropout] * len(hidden_dims) -> Linear``.

    ``out_features`` is the number of classes for classification (the network returns logits)
    and 1 for regression.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_dims: Sequence[int] = (128, 64),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"MLP needs in_features >= 1 and out_features >= 1, "
                f"got in_features={in_features}, out_features={out_features}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
