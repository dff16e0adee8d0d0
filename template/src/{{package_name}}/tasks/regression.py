"""Regression: one continuous target, standardised for the loss, answered in its own units.

The network predicts ``(y - mean) / std`` with the training split's mean and standard deviation
(``fit``), so one learning rate suits targets of any scale; ``decode`` undoes it, so metrics
and predictions are in the target's units. The two numbers travel in the checkpoint as
``target_scale``.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection, R2Score

from .base import Task


def metric_collection(prefix: str = "") -> MetricCollection:
    """Regression's top-line metrics, in float64: what the trainer logs and ``evaluate`` reports.

    ``evaluation/metrics.py`` computes its MSE, MAE and R² with this too.
    """
    metrics: dict[str, Metric | MetricCollection] = {
        "mse": MeanSquaredError(),
        "mae": MeanAbsoluteError(),
        "r2": R2Score(),
    }
    collection = MetricCollection(metrics, prefix=prefix)
    return collection.set_dtype(torch.float64)  # sums of squares in float64


class Regression(Task):
    """One target value per row; the network returns ``(n, 1)``."""

    kind: ClassVar[str] = "regression"
    main_metric: ClassVar[str] = "mae"
    higher_is_better: ClassVar[bool] = False

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self.mean, self.std = 0.0, 1.0

    def targets(self, column: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(column, dtype=np.float32).copy()).unsqueeze(1)

    def model_sizes(self) -> dict[str, int]:
        return {"out_features": 1}

    def fit(self, targets: torch.Tensor) -> None:
        values = targets.double()
        std = values.std().item() if len(values) > 1 else 1.0
        self.mean, self.std = values.mean().item(), std if std > 0 else 1.0

    def encode(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self.mean) / self.std

    def loss(
        self, outputs: torch.Tensor, encoded: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        return F.mse_loss(outputs, encoded, reduction=reduction)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.double().reshape(-1) * self.std + self.mean

    def metrics(self, prefix: str = "") -> MetricCollection:
        return metric_collection(prefix)

    def update(
        self, metrics: MetricCollection, answers: torch.Tensor, targets: torch.Tensor
    ) -> None:
        metrics.update(answers.double(), targets.double().reshape(-1))

    def state_dict(self) -> dict[str, Any]:
        return {"target_scale": {"mean": self.mean, "std": self.std}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        scale = state["target_scale"]
        self.mean, self.std = float(scale["mean"]), float(scale["std"])

    def columns(self, answers: np.ndarray) -> dict[str, np.ndarray]:
        return {"prediction": answers}

    def answers_spec(self) -> dict[str, Any]:
        return {"kind": "prediction in the target's units", "shape": ["n"]}

    # Evaluation gets the values in the target's units (``for_evaluation`` is ``decode``).

    prediction_words: ClassVar[str] = "the predicted value, in the target's units"
    error_name: ClassVar[str] = "MAE"

    def main_score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        # In numpy's float64 sum, as evaluation always reported it.
        return float(np.mean(np.abs(np.ravel(outputs) - np.ravel(targets))))

    def prediction(self, outputs: np.ndarray) -> np.ndarray:
        return np.ravel(outputs)

    def watched(
        self, before: np.ndarray, after: np.ndarray, spec: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, str]:
        return np.ravel(before), np.ravel(after), self.prediction_words

    def error(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return self.main_score(outputs, targets)
