"""The kinds of task: the only place that knows whether a run classifies or regresses.

A task (``base.Task``) owns what depends on the kind of target: the loss, the metrics, how
targets are encoded for the loss and how the network's outputs are decoded into answers, and how
answers are written and evaluated. Everything else (the trainer, evaluation, predict, export)
asks the task instead of asking which kind it is. ``data.task`` in the data config picks one.

To add a kind of task: write a module next to these with a ``Task`` subclass, add it to
``TASKS`` below, and give your data config ``task: <its name>``.
"""

from omegaconf import DictConfig
from torch import nn

from ..data.datasets import num_features
from ..data.schemas import is_images, is_text
from ..errors import ConfigError
from ..models.build import instantiate_model
from .base import Task
from .classification import Classification
from .image_classification import ImageClassification
from .regression import Regression
from .text_classification import TextClassification

TASKS: dict[str, type[Task]] = {
    "image_classification": ImageClassification,
    "tabular_classification": Classification,
    "tabular_regression": Regression,
    "text_classification": TextClassification,
}

__all__ = [
    "TASKS",
    "Classification",
    "ImageClassification",
    "Regression",
    "Task",
    "TextClassification",
    "build_model",
    "for_data",
]


def for_data(data: DictConfig) -> Task:
    """The task that ``data.task`` names, set up for that data config."""
    name = data.get("task")
    if name not in TASKS:
        raise ConfigError(f"data.task must be one of {sorted(TASKS)}, got {name!r}.")
    return TASKS[name](data)


def build_model(cfg: DictConfig) -> nn.Module:
    """``cfg.model`` instantiated, its null sizes filled in: the input's from the data, the
    output layer's from the task (classes, or one value)."""
    sizes = for_data(cfg.data).model_sizes()
    if is_images(cfg.data):  # a network of images is sized by its channels, not a row's width
        sizes["in_channels"] = int(cfg.data.image_shape[0])
    elif not is_text(cfg.data):  # texts: sized by the vocabulary (the task's model_sizes)
        sizes["in_features"] = num_features(cfg.data)
    return instantiate_model(cfg.model, sizes)
