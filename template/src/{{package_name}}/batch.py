"""Batch inference on files: ``python -m <package>.predict``'s raw rows in, predictions out.

Image data is predicted from image files: ``image_batch.py`` (``predict`` hands over to it).

- ``read_input`` and ``input_rows``: a Parquet or CSV file of raw rows, checked against the
  data's raw schema (``data/schemas.py``), the target column optional.
- ``predict``: the checkpoint's ``inference.predictor`` on those rows, its answers as the task's
  columns (``tasks/``), written with ``write_table``.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from . import settings
from .data.checks import DataValidationError, Failure, format_failures, schema_failures
from .data.schemas import schemas_for
from .errors import ConfigError
from .inference import checkpoint_task, load_checkpoint, predictor, trained_config

TABLE_SUFFIXES = (".parquet", ".csv")


def output_and_batch_size(cfg: DictConfig) -> tuple[Path, int]:
    """What every kind of predict checks first, before reading a checkpoint: ``input=`` and
    ``output=`` given, the output a table file, a positive ``batch_size``."""
    for key in ("input", "output"):
        if cfg.get(key) is None:
            raise ConfigError(f"{key}=... is required: predict reads input= and writes output=.")
    output = Path(str(cfg.output))
    if output.suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"output={output}: expected a file ending in .parquet or .csv.")
    return output, settings.positive_int(cfg.batch_size, "batch_size")


def predict(cfg: DictConfig) -> pd.DataFrame | int:
    """``python -m <package>.predict``: predictions for ``cfg.input``, written to ``cfg.output``.

    Returns the predictions as a DataFrame: ``id`` and the task's columns (``Task.columns``):
    ``prediction`` (the class index, or the value in the target's units) and, for
    classification, ``prob_<class>`` per class. Image data is predicted from image files
    instead (``image_batch.predict_files``, streamed to ``output``): it returns their number.
    """
    if cfg.data.get("image_shape"):
        from .image_batch import predict_files

        return predict_files(cfg)
    if cfg.data.get("tokenizer"):
        from .text_batch import predict_texts

        return predict_texts(cfg)
    output, batch_size = output_and_batch_size(cfg)
    state, path = load_checkpoint(cfg.ckpt_path)
    trained = trained_config(state, path, cfg)
    ids, rows = input_rows(read_input(Path(str(cfg.input)), trained.data), trained.data)
    model, device = predictor(state, path, cfg, cfg.trainer.accelerator)
    answers = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = torch.as_tensor(rows[start : start + batch_size], device=device)
            answers.append(model(batch).cpu())
    out = torch.cat(answers).numpy().astype(np.float64)
    result = pd.DataFrame({"id": ids, **checkpoint_task(state, path).columns(out)})
    write_table(result, output)
    return result


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Parquet or CSV by suffix, written beside ``path`` and renamed over it when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(partial, index=False)
    else:
        frame.to_csv(partial, index=False)
    partial.replace(path)


# ---- raw rows in --------------------------------------------------------------------------------


def read_input(path: Path, data: DictConfig):
    """The raw rows of ``path``: Parquet or CSV."""
    if path.suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"input={path}: expected a file ending in {', '.join(TABLE_SUFFIXES)}.")
    if not path.is_file():
        raise FileNotFoundError(f"input={path} does not exist")
    features = schemas_for(data.name)[2]
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as error:  # each reader has its own errors: name the file and the cause
        raise DataValidationError(_unreadable(path, error)) from None
    if not set(features) & set(map(str, frame.columns)):  # another table, or separator
        found = ", ".join(map(str, frame.columns[:10])) or "none"
        raise DataValidationError(
            f"input={path} has none of the feature columns of {data.name!r} (expected "
            f"{', '.join(features[:5])}, ... ({len(features)} in all; data/schemas.py), "
            f"found: {found}): is it the right file, and, for a CSV, comma-separated?"
        )
    return frame


def _unreadable(path: Path, error: Exception) -> str:
    """Why ``path`` cannot be read, in one line: the file, the cause and what to do."""
    kind = {".parquet": "Parquet", ".csv": "CSV"}[path.suffix]
    cause = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, UnicodeDecodeError):
        return (
            f"input={path} is not UTF-8 text ({cause}): save it as UTF-8 (for example "
            f"`iconv -f latin1 -t utf-8 {path.name}`)."
        )
    if isinstance(error, pd.errors.EmptyDataError):
        return f"input={path} is empty: a CSV file needs a header line naming the columns."
    return (
        f"input={path} cannot be read as {kind} ({type(error).__name__}: {cause}): is it a "
        f"{kind} file? The suffix says which reader is used (.parquet, .csv)."
    )


def input_rows(frame, data: DictConfig, table: str = "input"):
    """``(ids, features)`` of raw rows checked against the raw schema; the target is optional.

    Columns may come in any order. An ``id`` column is optional too: without one, the rows are
    numbered from 0. Integers where the schema wants floats are widened, and whole floats where
    it wants integers narrowed (CSV files do not keep dtypes); nothing else is
    coerced. Every broken rule is reported at once, naming the column.
    """

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
    if failures:
        raise RowsRefused(
            f"the {table} rows do not fit the raw schema of {data.name!r} (data/schemas.py; the "
            f"target column {data.target!r} is optional):\n{format_failures(failures)}",
            failures,
        )
    return frame["id"].to_numpy(), frame[features].to_numpy(dtype=np.float64, copy=True)


class RowsRefused(DataValidationError):
    """Raw rows that break the raw schema (``input_rows``): the message is the report, and
    ``failures`` the table itself, which the HTTP service answers as JSON."""

    def __init__(self, message: str, failures: list[Failure]) -> None:
        super().__init__(message)
        self.failures = failures


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
