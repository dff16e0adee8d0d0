"""Classification: class indices as targets, cross-entropy on logits, probabilities as answers."""

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection

from .base import Task


class Classification(Task):
    """``data.num_classes`` classes; the network returns one logit per class."""

    kind: ClassVar[str] = "classification"
    main_metric: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True

    @property
    def num_classes(self) -> int:
        return int(self.data.num_classes)

    def targets(self, column: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(column, dtype=np.int64).copy())

    def model_sizes(self) -> dict[str, int]:
        return {"out_features": self.num_classes, "num_classes": self.num_classes}

    def loss(
        self, outputs: torch.Tensor, encoded: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        return F.cross_entropy(outputs, encoded, reduction=reduction)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.float().softmax(dim=1)

    def metrics(self, prefix: str = "") -> MetricCollection:
        return MetricCollection({"accuracy": Accuracy()}, prefix=prefix)

    def columns(self, answers: np.ndarray) -> dict[str, np.ndarray]:
        out = {"prediction": answers.argmax(axis=1).astype(np.int64)}
        for index in range(answers.shape[1]):
            out[f"prob_{index}"] = answers[:, index]
        return out


class Accuracy(Metric):
    """The share of rows whose most probable class is the true one, as an exact float64 ratio.

    torchmetrics' ``MulticlassAccuracy`` divides in float32 (0.6 comes out as 0.6000000238), and
    metrics.json reports what predict's output files give to the last digit.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, answers: torch.Tensor, targets: torch.Tensor) -> None:
        self.correct += (answers.argmax(dim=1) == targets).sum()
        self.total += targets.numel()

    def compute(self) -> torch.Tensor:
        return self.correct.double() / self.total.clamp(min=1).double()
