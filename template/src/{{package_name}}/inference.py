"""From a checkpoint to a model that answers: what ``evaluate``, ``predict`` and ``export`` share.

- ``load_checkpoint`` and ``check_checkpoint``: the trainer's checkpoint, refused when it names
  code or holds non-finite numbers; ``restore_model``: its model, in eval mode, with the
  checkpoint's EMA weights when it has them (``trainer.ema``), else its raw ``model``.
- ``checkpoint_task``: the task (``tasks/``) of the checkpoint's data, with what it learnt in
  training (regression's ``target_scale``), which decodes the model's outputs.
- ``model_outputs``: a model's outputs on already processed inputs (what ``evaluate`` scores).
- ``predictor``: the model wrapped with the scaling ``prepare`` applied to its training data
  (kept in the checkpoint; ``data/processed/stats.json`` for older checkpoints), or for images
  with the ``Preprocess`` of the checkpoint's data config, and the task's decoding, so that it
  takes raw rows or raw pixels (``models/predictor.py``).

Reading and writing files of rows is ``batch.py`` (image files: ``image_batch.py``; both
``python -m <package>.predict``); the ``torch.export`` program is ``exporting.py`` (``python -m
<package>.export``). The entry points import these modules inside ``main``, so that ``--help``
and configuration errors answer without loading torch.
"""

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from . import models, tasks
from .data.checks import DataValidationError, read_stats
from .data.images import Preprocess, preprocess_for
from .data.schemas import schemas_for
from .errors import CheckpointError, ConfigError
from .models.build import served_weights
from .models.predictor import ImagePredictor, Predictor, TextPredictor

# ---- checkpoints --------------------------------------------------------------------------------


def load_checkpoint(ckpt_path: Any) -> tuple[dict[str, Any], Path]:
    """The checkpoint dict and its file: ``ckpt_path`` is a .pt file or a run's folder."""
    if ckpt_path is None:
        raise CheckpointError(
            "no checkpoint given: pass ckpt_path=<a .pt file written by the trainer> or "
            "ckpt_path=<a run's folder> (outputs/train/<date>/ holds checkpoints/best.pt)."
        )
    given = Path(str(ckpt_path))
    path = given
    sharded = _sharded_folder(given)
    if sharded is not None:  # trainer.strategy=fsdp: a folder of shards, not one file
        raise CheckpointError(
            f"ckpt_path={given} is a sharded checkpoint ({sharded}, written by a run with "
            "trainer.strategy=fsdp): make it one file first with python -m "
            f"{__package__}.consolidate {sharded}, then pass ckpt_path={sharded}.pt."
        )
    if given.is_dir():
        folder = given / "checkpoints" if (given / "checkpoints").is_dir() else given
        found = [folder / name for name in ("best.pt", "last.pt") if (folder / name).is_file()]
        if not found:
            raise CheckpointError(f"ckpt_path={given} holds no checkpoints/best.pt or last.pt.")
        path = found[0]
    elif not given.is_file():
        raise CheckpointError(
            f"ckpt_path={given} does not exist. Pass a .pt file written by the trainer "
            "(<output_dir>/checkpoints/best.pt or last.pt) or a run's folder; relative paths "
            "are relative to the folder you run from."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"ckpt_path={path} cannot be read as a checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Is it a file the trainer wrote?"
        ) from None
    if not isinstance(state, dict) or not {"model", "config"} <= set(state):
        raise CheckpointError(
            f"ckpt_path={path} is not a checkpoint of this project's trainer: it needs the keys "
            "'model' (the weights) and 'config' (the run's config)."
        )
    check_checkpoint(state, path)
    return state, path


def _sharded_folder(given: Path) -> Path | None:
    """The sharded checkpoint folder ``given`` is (or a run folder's ``checkpoints/best/`` when
    it has no single-file checkpoint), else None. Recognised by its files (``.metadata``,
    ``trainer.pt``: ``training/sharded.py``): inference does not import training."""

    def is_sharded(path: Path) -> bool:
        return (path / ".metadata").is_file() or (path / "trainer.pt").is_file()

    if given.is_dir() and is_sharded(given):
        return given
    folder = given / "checkpoints" if (given / "checkpoints").is_dir() else given
    single = any((folder / name).is_file() for name in ("best.pt", "last.pt"))
    if given.is_dir() and not single and is_sharded(folder / "best"):
        return folder / "best"
    return None


# A checkpoint is data: nothing in it may choose what code runs. Its config names the model's
# class (``model._target_``), so rebuilding the model accepts only the classes the project
# exports from ``models/__init__.py`` (``__all__``), called with plain values.


def model_classes() -> dict[str, type]:
    """The model classes a checkpoint may name, by each name its ``_target_`` may have.

    Those ``models/__init__.py`` exports in ``__all__`` (``<package>.models.MLP``), also by
    their defining module (``<package>.models.mlp.MLP``). A model added as the how-to says
    (docs: add a model) is one of them; nothing else is, whatever the checkpoint says.
    """

    classes = {}
    for name in getattr(models, "__all__", []):
        cls = getattr(models, name, None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            classes[f"{models.__name__}.{name}"] = cls
            classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return classes


def check_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Refuse, before anything is built or called, a checkpoint that names code or holds
    non-finite numbers: its model must be one of ``model_classes()`` with plain arguments (no
    nested ``_target_``, no ``_args_``, ``_partial_`` or other Hydra key), its config must hold
    no interpolation (``${...}``: resolvers), its weights and scales must be finite."""

    config = state["config"]
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        raise CheckpointError(f"{path} has no model config ('config' -> 'model').")
    allowed = model_classes()
    target = model.get("_target_")
    names = ", ".join(sorted(n for n in allowed if n.count(".") == 2)) or "none"
    if not isinstance(target, str) or target not in allowed:
        raise CheckpointError(
            f"{path} names the model class {target!r}, which is not one of this project's "
            f"models ({names}): a checkpoint may only rebuild the classes src/<package>/models/"
            "__init__.py exports in __all__. Nothing was run. If it is your own model, export "
            "it there (docs: add a model); otherwise do not use this file."
        )
    for where, _ in _leaves(model, "model"):
        key = where.rsplit(".", 1)[-1]
        if where != "model._target_" and re.fullmatch(r"_\w+_", key):
            raise CheckpointError(
                f"{path}: {where} is a Hydra key ({key}); a checkpoint's model config may hold "
                f"the class ({target}) and plain arguments only, never {key} or a nested "
                f"_target_. Nothing was run; do not use this file. (Allowed models: {names}.)"
            )
    for where, value in _leaves(config, "config"):
        if isinstance(value, str) and "${" in value:
            raise CheckpointError(
                f"{path}: {where} holds an interpolation ({value!r}); the trainer saves resolved "
                "configs only. Nothing was run; do not use this file."
            )
    averaged = state.get("ema")
    if averaged is not None and not (isinstance(averaged, dict) and "model" in averaged):
        raise CheckpointError(f"{path}: 'ema' is not the trainer's EMA (its 'model', 'steps').")
    weights = served_weights(state)  # the EMA's when there is one: those are served
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: 'model' is not a state dict of weights.")
    for name, tensor in weights.items():
        floating = torch.is_tensor(tensor) and tensor.is_floating_point()
        if floating and not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"{path}: the weights of the model hold NaN or infinite values (model.{name}); "
                "predictions from them would be meaningless. Use an earlier checkpoint "
                "(checkpoints/step-N.pt or best.pt) or train again."
            )
    run_id = (state.get("trainer_state") or {}).get("run_id")
    if run_id is not None and not re.fullmatch(r"[A-Za-z0-9][\w-]{0,255}", str(run_id)):
        raise CheckpointError(f"{path}: trainer_state.run_id {run_id!r} is not a run id.")
    scale = state.get("target_scale")
    if scale is not None:
        values = [scale.get(k) for k in ("mean", "std")] if isinstance(scale, dict) else []
        finite = [isinstance(v, int | float) and math.isfinite(v) for v in values]
        if len(values) != 2 or not all(finite) or not values[1]:
            raise CheckpointError(
                f"{path}: target_scale {scale} is not finite with a non-zero std: it was not "
                "written by this project's trainer. Train again."
            )
    if state.get("feature_scale") is not None:
        check_scaling(state["feature_scale"], f"{path}: feature_scale", CheckpointError)


def check_scaling(stats: dict[str, Any], where: str, error: type[Exception]) -> None:
    """``offset`` and ``scale`` are finite, and no ``scale`` is 0 (inputs are divided by it)."""
    features = (stats.get("features") or []) if isinstance(stats, dict) else []
    for key in ("offset", "scale"):
        values = stats.get(key) if isinstance(stats, dict) else None
        if not isinstance(values, list) or len(values) != len(features):
            raise error(f"{where} has no {key} per feature; prepare the data again.")
        for feature, value in zip(features, values, strict=True):
            bad = not isinstance(value, int | float) or not math.isfinite(value)
            if bad or (key == "scale" and value == 0):
                raise error(
                    f"{where}: the {key} of feature {feature!r} is {value!r}; inputs are "
                    "scaled as (raw - offset) / scale, so it must be finite and the scale "
                    "non-zero. Prepare the data again (python -m <package>.data.prepare) and "
                    "retrain."
                )


def _leaves(tree: Any, prefix: str):
    """``(dotted key, value)`` of every entry of nested dicts and lists, containers included."""
    if isinstance(tree, dict):
        items = [(f"{prefix}.{key}", value) for key, value in tree.items()]
    elif isinstance(tree, list):
        items = [(f"{prefix}[{index}]", value) for index, value in enumerate(tree)]
    else:
        items = []
    for where, value in items:
        yield where, value
        yield from _leaves(value, where)


def restore_model(state: dict[str, Any], path: Path, accelerator: str):
    """The model of the checkpoint's config with its weights, in eval mode, and its device
    (a model with adapters, ``models.LoraClassifier``, with its adapters merged)."""
    use_cuda = accelerator != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    check_checkpoint(state, path)  # whoever calls this: only the project's own models
    model = tasks.build_model(OmegaConf.create(state["config"]))
    try:
        model.load_state_dict(served_weights(state))
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: the weights do not fit the model its config describes "
            f"({str(error).splitlines()[0]})."
        ) from None
    merged = getattr(model, "merged", None)
    if callable(merged):  # LoRA adapters folded in: same outputs, faster
        model = merged()
    return model.to(device).eval(), device


def model_outputs(model: nn.Module, inputs, device, task: tasks.Task | None = None) -> np.ndarray:
    """The model's outputs on processed ``inputs``, as float64 numpy: as ``task.for_evaluation``
    gives them (logits for classification, values in the target's units for regression), or
    raw without a task."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), 1024):
            batch = torch.as_tensor(np.asarray(inputs[start : start + 1024]), device=device)
            outputs.append(model(batch.float()).float().cpu())
    out = torch.cat(outputs)
    if task is not None:
        out = task.for_evaluation(out)
    return out.numpy().astype(np.float64)


def checkpoint_task(state: dict[str, Any], path: Path) -> tasks.Task:
    """The task of the checkpoint's data, with what it learnt from the training split (the
    regression's ``target_scale``), so that it decodes outputs as the trainer encoded targets."""
    task = tasks.for_data(OmegaConf.create(state["config"]).data)
    try:
        task.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path} lacks what its task ({type(task).__name__}) learnt in training "
            f"({type(error).__name__}: {error}): it was not written by the trainer."
        ) from None
    return task


def trained_config(state: dict[str, Any], path: Path, cfg: DictConfig) -> DictConfig:
    """The checkpoint's config, refused when it was trained for another dataset or task."""
    trained = OmegaConf.create(state["config"])
    for key in ("name", "task"):
        was, now = trained.data.get(key), cfg.data.get(key)
        if was != now:
            raise ConfigError(
                f"{path} was trained for data.{key}={was}, but this project's config has "
                f"data.{key}={now}: its inputs and outputs would not mean the same. Use a "
                "checkpoint trained on this data, or pass the matching data=... override."
            )
    return trained


def load_stats(processed_dir: str | Path, features: list[str]) -> dict[str, Any]:
    """``offset`` and ``scale`` that ``prepare`` applied to the features (``stats.json``): lists
    of floats, beside ``features``, their names."""
    path = Path(processed_dir) / "stats.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: predict scales raw rows as prepare scaled the training data; "
            "run `python -m <package>.data.prepare` (or `make prepare`), or point "
            "paths.processed_dir at the data the checkpoint was trained on."
        )
    stats = read_stats(path)  # a corrupt file: DataValidationError naming it (exit 5)
    if stats.get("features") != list(features):
        raise DataValidationError(
            f"{path} describes the features {stats.get('features')}, not those of the schema "
            f"({features}): prepare the data again."
        )
    check_scaling(stats, str(path), DataValidationError)
    return stats


def feature_scale(
    state: dict[str, Any], path: Path, processed_dir: str | Path, features: list[str]
) -> dict[str, Any]:
    """``offset`` and ``scale`` the model's inputs were scaled with: ``raw = x * scale + offset``.

    The checkpoint's ``feature_scale``; a checkpoint from before the trainer kept it falls back
    on today's ``stats.json``.
    """
    stats = state.get("feature_scale")
    if stats is None:
        return load_stats(processed_dir, features)
    if stats.get("features") != list(features):
        raise CheckpointError(
            f"{path} was trained on the features {stats.get('features')}, not those of the "
            f"schema ({features})."
        )
    return stats


def predictor(state: dict[str, Any], path: Path, cfg: DictConfig, accelerator: str = "cpu"):
    """The checkpoint's model taking raw input, and its device (``models/predictor.py``): raw
    rows for tables (``Predictor``), raw pixels for images (``ImagePredictor``, with the
    ``Preprocess`` the checkpoint's data config describes)."""
    trained = trained_config(state, path, cfg)
    wrapped: nn.Module
    if trained.data.get("image_shape"):
        model, device = restore_model(state, path, accelerator)
        preprocess = preprocess_for(trained.data)  # the checkpoint's, not the project's config
        wrapped = ImagePredictor(model, preprocess, checkpoint_task(state, path).decode)
    elif trained.data.get("tokenizer"):
        model, device = restore_model(state, path, accelerator)
        wrapped = TextPredictor(model, checkpoint_task(state, path).decode)
    else:
        features = schemas_for(trained.data.name)[2]
        stats = feature_scale(state, path, cfg.paths.processed_dir, features)
        model, device = restore_model(state, path, accelerator)
        decode = checkpoint_task(state, path).decode
        wrapped = Predictor(model, stats["offset"], stats["scale"], decode)
    return wrapped.to(device).eval(), device


def served_model(ckpt: Path, cfg: DictConfig) -> tuple[Any, Any]:
    """The checkpoint's model as ``predict`` and ``export`` serve it, and an input example: what
    training logs to the tracker as its model (``train``, ``tracking.resend``).

    ``predictor``: raw input in (the checkpoint's feature scaling, or for images its
    ``Preprocess``, inside), probabilities or values in the target's units out. The example is
    two rows of the test split in raw units: float32 ``(2, features)``, or for images float32
    ``(2, C, H, W)`` pixels in ``data.pixel_range`` units (``data.image_shape``'s size).
    """
    from torch.utils.data import TensorDataset

    from .data.datasets import load_split
    from .data.streaming import ParquetStream
    from .data.text import TokenizedText
    from .tasks.text_classification import TextClassification

    state, path = load_checkpoint(ckpt)
    model, _ = predictor(state, path, cfg, "cpu")
    if isinstance(model, TextPredictor):
        # Two test texts as int64 token ids (n, L) of the checkpoint's tokenizer, padded with 0.
        task = checkpoint_task(state, path)
        assert isinstance(task, TextClassification)  # a TextPredictor is built for text data only
        split = load_split(
            cfg.data,
            cfg.paths.processed_dir,
            "test",
            torch.from_numpy,
            tokenizer_json=task.tokenizer_json,
        )
        assert isinstance(split, TokenizedText)  # text data (data.tokenizer) loads as one
        return model, task.encode_texts(list(split.texts[:2]))
    test = load_split(cfg.data, cfg.paths.processed_dir, "test", torch.from_numpy, lazy=True)
    if isinstance(model, ImagePredictor):
        # Whatever dataset holds the split, its rows are preprocessed images in [0, 1]: back in
        # raw units (exact for files of image_shape's size; resized ones as the model saw them).
        assert not isinstance(test, ParquetStream)  # only tables stream (data.streaming)
        images = torch.stack([test[index][0] for index in range(min(2, len(test)))])
        preprocess = model.preprocess
        assert isinstance(preprocess, Preprocess)  # predictor() builds it with preprocess_for
        return model, (images.float() * preprocess.span + preprocess.low).numpy()
    # A streamed test split (a table larger than memory): its first row group only.
    if isinstance(test, ParquetStream):
        processed = test.read([0])[0][:2]
    else:
        assert isinstance(test, TensorDataset)  # tables load as tensors (or a stream)
        processed = test.tensors[0][:2]
    rows = processed.reshape(len(processed), -1).double() * model.scale + model.offset
    return model, rows.float().numpy()
