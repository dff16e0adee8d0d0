"""Classification: class indices as targets, cross-entropy on logits, probabilities as answers."""

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import log_softmax, logsumexp, softmax
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
    correct: torch.Tensor  # the states add_state registers
    total: torch.Tensor

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

    # Evaluation gets logits (``for_evaluation``): their argmax is the predicted class.

    prediction_words: ClassVar[str] = "the predicted class"
    # Log loss: finer than accuracy, which a near-perfect model barely loses.
    error_name: ClassVar[str] = "log loss"

    def main_score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        # In numpy, without building a metric collection: called once per slice and perturbation.
        return float(np.mean(outputs.argmax(axis=1) == targets))

    def prediction(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.argmax(axis=1)

    def changed(self, before: np.ndarray, after: np.ndarray, tolerance: float) -> np.ndarray:
        return before != after  # a class changes or it does not

    def watched(
        self, before: np.ndarray, after: np.ndarray, spec: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """The log-odds of class ``target_class`` (default 1), or of each row's class predicted
        before the change (``predicted``): unlike probabilities they do not saturate at 0 and 1."""
        target = spec.get("target_class", 1)
        k = before.argmax(axis=1) if target == "predicted" else np.full(len(before), int(target))
        which = "the predicted class" if target == "predicted" else f"class {target}"
        return _log_odds(before, k), _log_odds(after, k), f"the log-odds of {which}"

    def error(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        picked = softmax(outputs, axis=1)[np.arange(len(targets)), targets.astype(int)]
        return float(np.mean(-np.log(np.clip(picked, 1e-15, 1.0))))


def _log_odds(scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log P(k) - log P(not k) per row, from log-probabilities, so it stays finite when sure."""
    log_p = log_softmax(scores.astype(np.float64), axis=1)
    rows = np.arange(len(log_p))
    others = log_p.copy()
    others[rows, k] = -np.inf
    return log_p[rows, k] - logsumexp(others, axis=1)
