"""Knowledge distillation: a student learns from a teacher's softened outputs and from the labels.

The loop calls one criterion per micro-batch, ``criterion(outputs, inputs, targets)``:

- ``TaskLoss``: the task's own loss (``tasks/``), what every run minimises without a teacher;
- ``Distiller`` (``distillation.teacher_ckpt`` set): the teacher, a checkpoint of this project
  restored as ``evaluate`` and ``predict`` restore one (``inference.restore_model``: only the
  project's own model classes, finite weights), runs on the same inputs in eval mode, without
  gradients, under the same autocast, and the loss is

      (1 - weight) * task loss + weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

  with ``T = distillation.temperature`` (Hinton et al., 2015: the T^2 keeps the soft term's
  gradients on the scale of the hard one's as T changes) and the KL averaged over the rows.

Classification only (image, tabular and text): a regression run with a teacher is refused
(``ConfigError``, exit 2), since softened class probabilities have no regression counterpart
here. The teacher must have been trained on the same data: another dataset or task is a
``ConfigError`` (exit 2, as for evaluate), another number of classes, input shape, features'
scaling or tokenizer a ``CheckpointError`` (exit 3: the checkpoint does not fit this run).

The teacher is fixed, so exact resume is unaffected; its md5 is recorded beside its path
(``distillation.teacher_md5`` in the run's params and in every checkpoint's config), and a
resume with another teacher file is refused (``resume.py``). Under DDP the teacher is not
wrapped: every rank runs its own copy on its own slice of the batch.
"""

import copy
import hashlib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..tasks import Task
from . import precision as amp

__all__ = ["Distiller", "TaskLoss", "criterion", "kd_loss", "load_teacher"]


class TaskLoss:
    """The task's loss of a micro-batch: what the loop minimises without a teacher."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def __call__(
        self, outputs: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return self.task.loss(outputs.float(), self.task.encode(targets))

    def read(self) -> dict[str, float]:
        """The loss's parts since the last read, for the log (none: the total is the loss)."""
        return {}

    def recorded(self, cfg: DictConfig) -> DictConfig:
        """The run's config as checkpoints and params keep it (unchanged without a teacher)."""
        return cfg


class Distiller(TaskLoss):
    """The task's loss blended with the KL divergence from a fixed teacher's outputs."""

    def __init__(
        self, task: Task, teacher: nn.Module, temperature: float, weight: float,
        precision: str = "32", device: torch.device | None = None, md5: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(task)
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.weight, self.md5 = float(temperature), float(weight), md5
        self.precision, self.device = precision, device or torch.device("cpu")
        self._sums: torch.Tensor | None = None  # task loss, KD loss: summed, read at log points
        self._count = 0

    def __call__(
        self, outputs: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        task_loss = super().__call__(outputs, inputs, targets)
        with torch.no_grad(), amp.autocast(self.precision, self.device):
            teacher = self.teacher(inputs)
        kd = kd_loss(outputs.float(), teacher.float(), self.temperature)
        parts = torch.stack([task_loss.detach(), kd.detach()])  # no host sync here
        self._sums = parts if self._sums is None else self._sums + parts
        self._count += 1
        return (1.0 - self.weight) * task_loss + self.weight * kd

    def read(self) -> dict[str, float]:
        if self._sums is None:
            return {}
        task_loss, kd = (self._sums / self._count).tolist()  # this rank's micro-batches
        self._sums, self._count = None, 0
        return {"train/task_loss": task_loss, "train/kd_loss": kd}

    def recorded(self, cfg: DictConfig) -> DictConfig:
        cfg = copy.deepcopy(cfg)
        OmegaConf.update(cfg, "distillation.teacher_md5", self.md5, force_add=True)
        return cfg


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the rows."""
    t = float(temperature)
    return (t * t) * F.kl_div(
        F.log_softmax(student / t, dim=1),
        F.log_softmax(teacher / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )


def criterion(
    cfg: DictConfig, task: Task, precision: str = "32", device: torch.device | None = None,
    feature_scale: dict[str, Any] | None = None,
) -> TaskLoss:  # fmt: skip
    """The task's loss, or with ``distillation.teacher_ckpt`` set a ``Distiller``
    (``feature_scale``: the student's, for tables; the teacher's must be the same)."""
    settings = cfg.get("distillation")
    if not settings or not settings.get("teacher_ckpt"):
        return TaskLoss(task)
    device = device or torch.device("cpu")
    # Building the teacher draws initial weights that its checkpoint's then replace: the
    # generators stay as they were, so the student's run is the same with or without one.
    with torch.random.fork_rng(devices=[]):
        teacher, md5 = load_teacher(cfg, task, device, feature_scale)
    return Distiller(task, teacher, settings.temperature, settings.weight, precision, device, md5)


def load_teacher(
    cfg: DictConfig, task: Task, device: torch.device, feature_scale: dict[str, Any] | None = None
) -> tuple[nn.Module, str]:
    """The teacher of ``distillation.teacher_ckpt`` on ``device``, frozen, and its file's md5;
    refused when it cannot teach this run (see the module's docstring)."""
    from ..inference import load_checkpoint, restore_model, trained_config

    given = cfg.distillation.teacher_ckpt
    if task.kind != "classification":
        raise ConfigError(
            f"distillation.teacher_ckpt={given} is set, but data.task={cfg.data.task} is a "
            f"{task.kind}: knowledge distillation here matches class probabilities, so it is "
            "for classification tasks only. Drop the teacher (distillation.teacher_ckpt=null)."
        )
    state, path = load_checkpoint(given)  # CheckpointError: missing, unreadable, names code
    trained = trained_config(state, path, cfg)  # ConfigError: another dataset or task
    mismatch = _mismatch(state, trained.data, cfg.data, task, feature_scale)
    if mismatch:
        raise CheckpointError(
            f"distillation.teacher_ckpt={path} cannot teach this run: {mismatch}. The teacher "
            "must be trained on the same prepared data as the student; train one with this "
            "project's current data (docs: how-to, distill) and pass its checkpoints/best.pt."
        )
    model, _ = restore_model(state, path, "cpu")  # the project's own classes, finite weights
    return model.to(device).eval().requires_grad_(False), _md5(path)


def _mismatch(
    state: dict[str, Any], teacher: Any, student: Any, task: Task, feature_scale: Any
) -> str | None:
    """What differs between the teacher's data and the student's, in words (None: nothing)."""
    for key in ("num_classes", "image_shape", "max_length"):
        was, now = _plain(teacher.get(key)), _plain(student.get(key))
        if was != now:
            return f"it was trained with data.{key}={was}, this run has data.{key}={now}"
    if task.text:
        from ..data.text import tokenizer_md5
        from ..tasks.text_classification import TextClassification

        assert isinstance(task, TextClassification)  # the text task, which holds the tokenizer
        was = (state.get("tokenizer") or {}).get("md5")
        now = tokenizer_md5(task.tokenizer_json) if task.tokenizer_json else None
        if was != now:
            return (
                f"its tokenizer (md5 {was}) is not this run's (md5 {now}): the same token ids "
                "would mean other words to it (prepare was run again since it was trained)"
            )
    scale = state.get("feature_scale")  # tables: how prepare scaled the features
    if scale is not None and feature_scale is not None and scale != feature_scale:
        return (
            "its features were scaled otherwise than this run's (feature_scale differs: prepare "
            "was run again on other data since it was trained)"
        )
    return None


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
