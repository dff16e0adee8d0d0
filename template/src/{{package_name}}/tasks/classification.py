"""Classification: class indices as targets, cross-entropy on logits, probabilities as answers."""

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection

from .base import Task


def metric_collection(num_classes: int, prefix: str = "") -> MetricCollection:
    """Classification's top-line metrics: what the trainer logs and ``evaluate`` reports.

    ``evaluation/metrics.py`` computes its accuracy with this too (from predicted classes or
    probabilities), so that the two agree by construction.
    """
    return MetricCollection({"accuracy": Accuracy()}, prefix=prefix)


class Accuracy(Metric):
    """The share of rows whose class is predicted right, as an exact float64 ratio.

    torchmetrics' ``MulticlassAccuracy`` divides in float32 (0.6 comes out as 0.6000000238), and
    metrics.json reports what predict's output files give to the last digit. ``update`` takes
    class probabilities or scores ``(n, classes)`` (the most probable class counts) or
    predicted classes ``(n,)``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, answers: torch.Tensor, targets: torch.Tensor) -> None:
        predicted = answers.argmax(dim=1) if answers.dim() > 1 else answers
        self.correct += (predicted == targets).sum()
        self.total += targets.numel()

    def compute(self) -> torch.Tensor:
        return self.correct.double() / self.total.clamp(min=1).double()


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

    def for_evaluation(self, outputs: torch.Tensor) -> torch.Tensor:
        # Logits: calibration fits a temperature to them; the suite takes the softmax itself.
        return outputs.float()

    def metrics(self, prefix: str = "") -> MetricCollection:
        return metric_collection(self.num_classes, prefix)

    def columns(self, answers: np.ndarray) -> dict[str, np.ndarray]:
        out = {"prediction": answers.argmax(axis=1).astype(np.int64)}
        for index in range(answers.shape[1]):
            out[f"prob_{index}"] = answers[:, index]
        return out

    def answers_spec(self) -> dict[str, Any]:
        return {"kind": "probabilities", "shape": ["n", self.num_classes]}
