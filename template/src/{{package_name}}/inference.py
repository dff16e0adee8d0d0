"""From a checkpoint to answers: what ``evaluate``, ``predict`` and ``export`` share.

- ``load_checkpoint`` and ``restore_model``: the trainer's checkpoint and its model, in eval mode.
- ``model_outputs``: a model's outputs on already processed inputs (what ``evaluate`` scores).
- ``predictor``: the model wrapped with the scaling ``prepare`` applied to its training data
  (kept in the checkpoint; ``data/processed/stats.json`` for older checkpoints), so that it
  takes raw rows (``models/predictor.py``).
- ``read_input`` and ``input_rows``: a Parquet, CSV (or, for images, ``.npy``) file of raw rows,
  checked against the data's raw schema (``data/schemas.py``), the target column optional.
- ``predict``: all of the above for ``python -m <package>.predict``; ``export_model`` and
  ``load_exported``: the ``torch.export`` program that ``python -m <package>.export`` writes.

torch and pandas are imported inside the functions, so that the entry points that import this
module answer ``--help`` and configuration errors without loading them.
"""

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from . import settings

TABLE_SUFFIXES = (".parquet", ".csv")
EXPORT_METADATA = "predictor.json"


# ---- checkpoints --------------------------------------------------------------------------------


def load_checkpoint(ckpt_path: Any) -> tuple[dict[str, Any], Path]:
    """The checkpoint dict and its file: ``ckpt_path`` is a .pt file or a run's folder."""
    import torch

    from .errors import CheckpointError

    if ckpt_path is None:
        raise CheckpointError(
            "no checkpoint given: pass ckpt_path=<a .pt file written by the trainer> or "
            "ckpt_path=<a run's folder> (outputs/train/<date>/ holds checkpoints/best.pt)."
        )
    given = Path(str(ckpt_path))
    path = given
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


# A checkpoint is data: nothing in it may choose what code runs. Its config names the model's
# class (``model._target_``), so rebuilding the model accepts only the classes the project
# exports from ``models/__init__.py`` (``__all__``), called with plain values.


def model_classes() -> dict[str, type]:
    """The model classes a checkpoint may name, by each name its ``_target_`` may have.

    Those ``models/__init__.py`` exports in ``__all__`` (``<package>.models.MLP``), also by
    their defining module (``<package>.models.mlp.MLP``). A model added as the how-to says
    (docs: add a model) is one of them; nothing else is, whatever the checkpoint says.
    """
    from torch import nn

    from . import models

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
    import math
    import re

    import torch

    from .errors import CheckpointError

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
    weights = state["model"]
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
    import math

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
    """The model of the checkpoint's config with its weights, in eval mode, and its device."""
    import torch

    from .errors import CheckpointError
    from .tasks import build_model

    use_cuda = accelerator != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    check_checkpoint(state, path)  # whoever calls this: only the project's own models
    model = build_model(OmegaConf.create(state["config"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: the weights do not fit the model its config describes "
            f"({str(error).splitlines()[0]})."
        ) from None
    return model.to(device).eval(), device


def model_outputs(model, inputs, device, target_scale: dict[str, float] | None = None):
    """Logits (classification) or values in the target's units (regression), as numpy."""
    import numpy as np
    import torch

    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), 1024):
            batch = torch.as_tensor(np.asarray(inputs[start : start + 1024]), device=device)
            outputs.append(model(batch.float()).float().cpu())
    out = torch.cat(outputs).numpy().astype(np.float64)
    if target_scale is None:
        return out
    # The trainer standardises regression targets; undo it to report in the target's units.
    return out.ravel() * target_scale["std"] + target_scale["mean"]


def trained_config(state: dict[str, Any], path: Path, cfg: DictConfig) -> DictConfig:
    """The checkpoint's config, refused when it was trained for another dataset or task."""
    from .errors import ConfigError

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


# ---- raw rows in --------------------------------------------------------------------------------


def read_input(path: Path, data: DictConfig):
    """The raw rows of ``path``: Parquet or CSV; for images also ``.npy``, (n, H, W) or (n, H*W)."""
    import numpy as np
    import pandas as pd

    from .data.checks import DataValidationError
    from .data.schemas import schemas_for
    from .errors import ConfigError

    images = bool(data.get("image_shape"))
    allowed = (*TABLE_SUFFIXES, ".npy") if images else TABLE_SUFFIXES
    if path.suffix not in allowed:
        raise ConfigError(f"input={path}: expected a file ending in {', '.join(allowed)}.")
    if not path.is_file():
        raise FileNotFoundError(f"input={path} does not exist")
    features = schemas_for(data.name)[2]
    try:
        if path.suffix in TABLE_SUFFIXES:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        else:
            array = np.load(path, allow_pickle=False)
    except Exception as error:  # each reader has its own errors: name the file and the cause
        raise DataValidationError(_unreadable(path, error)) from None
    if path.suffix in TABLE_SUFFIXES:
        if not set(features) & set(map(str, frame.columns)):  # another table, or separator
            found = ", ".join(map(str, frame.columns[:10])) or "none"
            raise DataValidationError(
                f"input={path} has none of the feature columns of {data.name!r} (expected "
                f"{', '.join(features[:5])}, ... ({len(features)} in all; data/schemas.py), "
                f"found: {found}): is it the right file, and, for a CSV, comma-separated?"
            )
        return frame
    if not np.issubdtype(array.dtype, np.number):
        raise DataValidationError(
            f"input={path} holds an array of {array.dtype}, not numbers: save the raw pixels "
            "as a numeric array (np.save(path, pixels.astype('uint8')))."
        )
    if array.ndim < 2 or int(np.prod(array.shape[1:])) != len(features):
        raise DataValidationError(
            f"input={path} holds an array of shape {array.shape}; expected (n, "
            f"{', '.join(map(str, data.image_shape[1:]))}) or (n, {len(features)}) raw pixels."
        )
    return pd.DataFrame(array.reshape(len(array), -1), columns=features)


def _unreadable(path: Path, error: Exception) -> str:
    """Why ``path`` cannot be read, in one line: the file, the cause and what to do."""
    import pandas as pd

    kind = {".parquet": "Parquet", ".csv": "CSV", ".npy": "NumPy .npy"}[path.suffix]
    cause = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, UnicodeDecodeError):
        return (
            f"input={path} is not UTF-8 text ({cause}): save it as UTF-8 (for example "
            f"`iconv -f latin1 -t utf-8 {path.name}`)."
        )
    if isinstance(error, pd.errors.EmptyDataError):
        return f"input={path} is empty: a CSV file needs a header line naming the columns."
    if path.suffix == ".npy" and "allow_pickle" in cause:
        return (
            f"input={path} holds Python objects, not numbers: save the raw pixels as a numeric "
            "array (np.save(path, pixels.astype('uint8')))."
        )
    return (
        f"input={path} cannot be read as {kind} ({type(error).__name__}: {cause}): is it a "
        f"{kind} file? The suffix says which reader is used (.parquet, .csv"
        f"{', .npy' if path.suffix == '.npy' else ''})."
    )


def input_rows(frame, data: DictConfig, table: str = "input"):
    """``(ids, features)`` of raw rows checked against the raw schema; the target is optional.

    Columns may come in any order. An ``id`` column is optional too: without one, the rows are
    numbered from 0. Integers where the schema wants floats are widened, and whole floats where
    it wants integers narrowed (CSV and ``.npy`` files do not keep dtypes); nothing else is
    coerced. Every broken rule is reported at once, naming the column.
    """
    import numpy as np

    from .data.checks import DataValidationError, format_failures, range_failures, schema_failures
    from .data.schemas import schemas_for

    raw_schema, _, features = schemas_for(data.name)
    frame = frame.copy()
    if "id" not in frame.columns:
        frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    known = [c for c in ["id", *features, data.target] if c in frame.columns]
    frame = frame[known + [c for c in frame.columns if c not in known]]
    with_target = data.target in frame.columns
    schema = raw_schema if with_target else _WithoutColumn(raw_schema, data.target)
    _align_dtypes(frame, schema.to_schema().get_dtypes(frame))
    failures = schema_failures(schema, frame, table, ["id", *features])
    if not failures and data.get("pixel_range") is not None:  # images: the range prepare scaled
        from .data.schemas import pixel_range

        failures = range_failures(frame, table, features, pixel_range(data), "data.pixel_range")
    if failures:
        raise DataValidationError(
            f"the {table} rows do not fit the raw schema of {data.name!r} (data/schemas.py; the "
            f"target column {data.target!r} is optional):\n{format_failures(failures)}"
        )
    return frame["id"].to_numpy(), frame[features].to_numpy(dtype=np.float64, copy=True)


class _WithoutColumn:
    """A raw schema less one column, read the way ``schema_failures`` reads a schema model."""

    def __init__(self, model, column: str) -> None:
        self.__name__ = model.__name__
        self._schema = model.to_schema().remove_columns([column])

    def to_schema(self):
        return self._schema

    def validate(self, frame, lazy: bool = False):
        return self._schema.validate(frame, lazy=lazy)


def _align_dtypes(frame, expected: dict) -> None:
    import numpy as np
    import pandas as pd

    for column, dtype in expected.items():
        if column not in frame.columns:
            continue  # reported by the schema check, by name
        want, have = str(dtype), frame[column].dtype
        if want == str(have):
            continue
        if pd.api.types.is_integer_dtype(have) and (want.startswith(("float", "int"))):
            frame[column] = frame[column].astype(want)  # uint8 pixels, integers in a CSV
        elif want.startswith("int") and pd.api.types.is_float_dtype(have):
            values = frame[column].to_numpy()
            if np.isfinite(values).all() and (values == np.round(values)).all():
                frame[column] = values.astype(want)


def load_stats(processed_dir: str | Path, features: list[str]) -> dict[str, list[float]]:
    """``offset`` and ``scale`` that ``prepare`` applied to the features (``stats.json``)."""
    from .data.checks import DataValidationError, read_stats

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
) -> dict[str, list[float]]:
    """``offset`` and ``scale`` the model's inputs were scaled with: ``raw = x * scale + offset``.

    The checkpoint's ``feature_scale``; a checkpoint from before the trainer kept it falls back
    on today's ``stats.json``.
    """
    stats = state.get("feature_scale")
    if stats is None:
        return load_stats(processed_dir, features)
    if stats.get("features") != list(features):
        from .errors import CheckpointError

        raise CheckpointError(
            f"{path} was trained on the features {stats.get('features')}, not those of the "
            f"schema ({features})."
        )
    return stats


def predictor(state: dict[str, Any], path: Path, cfg: DictConfig, accelerator: str = "cpu"):
    """The checkpoint's model taking raw rows (``models.predictor.Predictor``), and its device."""
    from .data.schemas import is_classification, schemas_for
    from .models.predictor import Predictor

    trained = trained_config(state, path, cfg)
    stats = feature_scale(state, path, cfg.paths.processed_dir, schemas_for(trained.data.name)[2])
    model, device = restore_model(state, path, accelerator)
    target_scale = None if is_classification(trained.data) else state.get("target_scale")
    if not is_classification(trained.data) and not target_scale:
        from .errors import CheckpointError

        raise CheckpointError(f"{path} has no target_scale: it was not written by the trainer.")
    wrapped = Predictor(
        model, stats["offset"], stats["scale"], trained.data.get("image_shape"), target_scale
    )
    return wrapped.to(device).eval(), device


# ---- predict ------------------------------------------------------------------------------------


def predict(cfg: DictConfig):
    """``python -m <package>.predict``: predictions for ``cfg.input``, written to ``cfg.output``.

    Returns the predictions as a DataFrame: ``id``, ``prediction`` (the class index, or the value
    in the target's units) and, for classification, ``prob_<class>`` per class.
    """
    import numpy as np
    import pandas as pd
    import torch

    from .errors import ConfigError

    for key in ("input", "output"):
        if cfg.get(key) is None:
            raise ConfigError(f"{key}=... is required: predict reads input= and writes output=.")
    output = Path(str(cfg.output))
    if output.suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"output={output}: expected a file ending in .parquet or .csv.")
    batch_size = settings.positive_int(cfg.batch_size, "batch_size")
    state, path = load_checkpoint(cfg.ckpt_path)
    trained = trained_config(state, path, cfg)
    ids, rows = input_rows(read_input(Path(str(cfg.input)), trained.data), trained.data)
    model, device = predictor(state, path, cfg, cfg.trainer.accelerator)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = torch.as_tensor(rows[start : start + batch_size], device=device)
            outputs.append(model(batch).cpu())
    out = torch.cat(outputs).numpy().astype(np.float64)
    result = pd.DataFrame({"id": ids})
    if model.classification:
        result["prediction"] = out.argmax(axis=1).astype(np.int64)
        for k in range(out.shape[1]):
            result[f"prob_{k}"] = out[:, k]
    else:
        result["prediction"] = out
    write_table(result, output)
    return result


def write_table(frame, path: Path) -> None:
    """Parquet or CSV by suffix, written beside ``path`` and renamed over it when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(partial, index=False)
    else:
        frame.to_csv(partial, index=False)
    partial.replace(path)


# ---- export -------------------------------------------------------------------------------------


def export_model(cfg: DictConfig) -> Path:
    """``python -m <package>.export``: the checkpoint's ``Predictor`` as a torch.export program.

    Saved with ``torch.export.save`` to ``cfg.output`` (default: beside the checkpoint, with the
    suffix ``.pt2``); the batch dimension is dynamic. The program takes float32 raw rows of shape
    ``(n, features)``; ``predictor.json`` inside the file says what goes in and comes out.
    """
    import torch

    from .data.schemas import is_classification, schemas_for
    from .errors import ConfigError

    state, path = load_checkpoint(cfg.ckpt_path)
    output = Path(str(cfg.output)) if cfg.get("output") else path.with_suffix(".pt2")
    if output.suffix != ".pt2":
        raise ConfigError(f"output={output}: torch.export programs are saved as .pt2 files.")
    model, _ = predictor(state, path, cfg, "cpu")
    data = trained_config(state, path, cfg).data
    features = schemas_for(data.name)[2]
    example = torch.zeros(2, len(features), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    classification = is_classification(data)
    metadata = {
        "checkpoint": str(path),
        "data": {"name": data.name, "task": data.task, "target": data.target},
        "input": {"dtype": "float32", "shape": ["n", len(features)], "columns": features},
        "output": (
            {"kind": "probabilities", "shape": ["n", int(data.num_classes)]}
            if classification
            else {"kind": "prediction in the target's units", "shape": ["n"]}
        ),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial.pt2")  # torch wants the .pt2 suffix
    torch.export.save(program, partial, extra_files={EXPORT_METADATA: json.dumps(metadata)})
    partial.replace(output)
    return output


def load_exported(path: str | Path):
    """``(program, metadata)``: call ``program.module()(rows)`` on float32 raw rows."""
    import torch

    extra = {EXPORT_METADATA: ""}
    program = torch.export.load(Path(path), extra_files=extra)
    return program, json.loads(extra[EXPORT_METADATA])


def served_model(ckpt: Path, cfg: DictConfig) -> tuple[Any, Any]:
    """The checkpoint's model as ``predict`` and ``export`` serve it, and an input example: what
    training logs to the tracker as its model (``train``, ``tracking.resend``).

    ``inference.predictor``: raw rows in (the checkpoint's feature scaling and, for images, the
    reshape are inside), probabilities or values in the target's units out. The example is two
    rows of the test split in raw units, float32 ``(2, features)``.
    """
    from .data.datasets import load_split

    state, path = load_checkpoint(ckpt)
    model, _ = predictor(state, path, cfg, "cpu")
    import torch

    test = load_split(cfg.data, cfg.paths.processed_dir, "test", torch.from_numpy)
    processed = test.tensors[0][:2]
    rows = processed.reshape(len(processed), -1).double() * model.scale + model.offset
    return model, rows.float().numpy()
