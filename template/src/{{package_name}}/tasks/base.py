"""What every kind of task provides; see ``classification.py`` and ``regression.py``.

The flow of one batch, and who does what:

    targets column --targets()--> target tensor --encode()--> what the loss compares with
    network outputs --loss(outputs, encoded)--> the training loss
    network outputs --decode()--> answers: class probabilities, or values in the target's units
    network outputs --for_evaluation()--> what evaluation scores (logits, or decoded values)
    answers + targets --update(metrics, ...)--> metrics() (torchmetrics), the same in the
                                                training loop's validation and in evaluate
    answers --columns()--> predict's output columns
    for_evaluation's outputs (numpy) --main_score(), prediction(), changed(), watched(),
                                       error()--> what evaluation's slices, behavioural tests
                                                  and feature importance measure

A task that learns something from the training split (regression standardises its targets)
keeps it in ``state_dict()``, which the checkpoint stores, so that predict and evaluate decode
outputs exactly as the trainer encoded targets.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from omegaconf import DictConfig
from torchmetrics import MetricCollection


class Task(ABC):
    """One kind of task, set up for one data config."""

    #: The kind of result: "classification" or "regression" (evaluation's sections depend on it).
    kind: ClassVar[str]
    #: The validation metric that tells a better model, and whether higher is better (the
    #: report's headline; early stopping watches ``trainer.early_stopping.monitor``).
    main_metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    #: Whether inputs are images (channels-last memory format, prediction grids).
    images: ClassVar[bool] = False
    #: Whether inputs are texts as token ids (``text_classification.py``).
    text: ClassVar[bool] = False

    def __init__(self, data: DictConfig) -> None:
        self.data = data

    # ---- data ---------------------------------------------------------------------------------

    @abstractmethod
    def targets(self, column: np.ndarray) -> torch.Tensor:
        """The target column of a split as the tensor the dataset holds."""

    def model_sizes(self) -> dict[str, int]:
        """The model arguments that the task decides (the width of the output layer)."""
        return {}

    # ---- training -----------------------------------------------------------------------------

    def fit(self, targets: torch.Tensor) -> None:  # noqa: B027 (most tasks learn nothing)
        """Learn what ``encode`` needs from the training split's targets (nothing by default)."""

    def fit_inputs(self, dataset: Any) -> None:  # noqa: B027 (most tasks learn nothing)
        """Take what the inputs need from the training dataset (text: its tokenizer)."""

    def encode(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets as the loss compares them with the network's outputs."""
        return targets

    @abstractmethod
    def loss(
        self, outputs: torch.Tensor, encoded: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """The loss of a batch: its mean, or with ``reduction="sum"`` its sum (evaluation)."""

    @abstractmethod
    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs as answers: class probabilities ``(n, classes)``, or values ``(n,)``."""

    def for_evaluation(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs as ``evaluate`` scores them: the answers unless the task says otherwise."""
        return self.decode(outputs)

    @abstractmethod
    def metrics(self, prefix: str = "") -> MetricCollection:
        """The task's metrics, fresh (names start with ``prefix``, e.g. ``val/``)."""

    def score(self, answers: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """The task's metrics of a whole split at once: ``metrics()`` updated once, computed."""
        metrics = self.metrics()
        self.update(metrics, answers, targets)
        return {name: float(value) for name, value in metrics.compute().items()}

    def update(
        self, metrics: MetricCollection, answers: torch.Tensor, targets: torch.Tensor
    ) -> None:
        """Add a batch of decoded answers and true targets to ``metrics``."""
        metrics.update(answers, targets)

    # ---- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What the task learnt in ``fit``, for the checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027
        """Restore what ``state_dict`` returned."""

    # ---- answers ------------------------------------------------------------------------------

    @abstractmethod
    def columns(self, answers: np.ndarray) -> dict[str, np.ndarray]:
        """predict's output columns for a batch of answers (``decode``'s output, as numpy)."""

    @abstractmethod
    def answers_spec(self) -> dict[str, Any]:
        """What ``decode`` returns, in words and shape (the export's ``predictor.json``)."""

    # ---- evaluation: numpy arrays of ``for_evaluation``'s outputs --------------------------------

    #: What ``prediction`` returns, in words (the behavioural tests' results say it).
    prediction_words: ClassVar[str]
    #: What ``error`` measures, in words (feature importance's unit).
    error_name: ClassVar[str]

    def main_score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The main metric of some rows (a slice, a perturbed test split): by default ``score``
        of the outputs as they are (the answers, unless ``for_evaluation`` says otherwise)."""
        return self.score(torch.as_tensor(outputs), torch.as_tensor(targets))[self.main_metric]

    @abstractmethod
    def prediction(self, outputs: np.ndarray) -> np.ndarray:
        """Each row's prediction (predict's ``prediction`` column): the class, or the value."""

    def changed(self, before: np.ndarray, after: np.ndarray, tolerance: float) -> np.ndarray:
        """Per row, whether two ``prediction``s differ by more than ``tolerance`` (invariance)."""
        return np.abs(after - before) > tolerance

    @abstractmethod
    def watched(
        self, before: np.ndarray, after: np.ndarray, spec: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """What a directional test (``spec``) expects to move, before and after the change,
        and what it is in words."""

    @abstractmethod
    def error(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """A mean loss of some rows, finer than the main metric (feature importance)."""
