"""The folds of a k-fold cross-validation (``python -m <package>.cv``) and their processed data.

``fold_indices`` deals the rows of the processed TRAINING split into k folds, shuffled with
``cv.seed``: stratified by label for classification (scikit-learn's ``StratifiedKFold``: each
fold keeps the split's class proportions), plain ``KFold`` for regression. The validation split
is not dealt out: it keeps its role in every fold (early stopping and the best checkpoint, as in
``train``), and the test split is not touched (docs/how-to/cross-validate.md says why).

``write_fold`` writes fold i's processed folder as ``prepare`` writes ``data/processed``:
``train.parquet`` (the other folds), ``val.parquet`` (the validation split) and
``test.parquet`` (the held-out fold: what the fold is scored on). What prepare fits on the
training split is fitted again on the fold's training part alone, so nothing of the held-out
fold reaches the model through the data:

- tables: the feature scaling. The processed features are prepare's affine transform of the raw
  values; the raw values are recovered with ``stats.json`` (``z * scale + offset``) and scaled
  with the mean and standard deviation of the fold's training rows (a constant feature keeps
  scale 1, as in prepare). The fold's ``stats.json`` holds that scaling in raw units, so the
  fold's checkpoints take raw rows in predict, evaluate and export like any other.
- texts: the tokenizer, trained on the fold's training texts (``text_prepare.tokenizer_for``).
- images: nothing is fitted (pixels are scaled by ``data.pixel_range``); the manifests are
  subsets of prepare's and ``images.json`` is copied.

Beside the folder, a validation record (``record.py``) vouches for exactly these files: they are
rows of data that passed validation (its md5 is kept as ``derived_from``), rescaled or
re-tokenized. It holds no schema digest, so loading a fold's split checks its schema again.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from ..errors import ConfigError
from .checks import read_processed, read_stats
from .record import checked_settings, image_files_digest, record_path
from .schemas import has_class_labels, is_images, is_text, schemas_for
from .streaming import streams
from .version import digest, file_md5s

__all__ = ["fold_indices", "read_training_rows", "scaling", "write_fold"]


def fold_indices(labels: np.ndarray | None, rows: int, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out rows (sorted positions) of each of ``folds`` folds: disjoint, together every
    row once. ``labels`` (classification) stratifies them; None deals them at random (KFold)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if folds > rows:
        raise ConfigError(
            f"cv.folds={folds} is more than the training split's {rows} rows: every fold needs "
            "rows to hold out. Lower cv.folds."
        )
    if labels is None:
        splitter: Any = KFold(n_splits=folds, shuffle=True, random_state=seed)
        return [np.sort(test) for _, test in splitter.split(np.zeros((rows, 1)))]
    labels = np.asarray(labels)
    counts = pd.Series(labels).value_counts()
    if counts.min() < folds:
        rare = counts[counts < folds]
        raise ConfigError(
            f"cv.folds={folds}: the training split has classes with fewer rows than folds "
            f"({', '.join(f'class {k}: {v}' for k, v in rare.items())}), so some folds would hold "
            "none of them and their metrics could not be compared. Lower cv.folds to at most "
            f"{int(counts.min())}."
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [np.sort(test) for _, test in splitter.split(np.zeros((rows, 1)), labels)]


def read_training_rows(cfg: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The processed training and validation splits, whole, in memory."""
    processed = Path(cfg.paths.processed_dir)
    train_path = processed / "train.parquet"
    if streams(cfg.data, train_path):
        raise ConfigError(
            f"cv reads the training split into memory, and {train_path} is read as a stream "
            "(data.stream: larger than memory, or forced): cross-validation of a table larger "
            "than memory is not supported. Set data.stream=false if it fits in memory."
        )
    return read_processed(train_path), read_processed(processed / "val.parquet")


def target_column(data: DictConfig) -> str:
    """The column of a processed split that holds the target (images and texts: ``label``)."""
    return "label" if is_images(data) or is_text(data) else str(data.target)


def scaling(raw_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """prepare's feature scaling (``prepare.transform``) fitted on ``raw_train``: the mean and
    the standard deviation of each column, a zero deviation (a constant column) taken as 1."""
    offset = raw_train.mean(axis=0)
    scale = raw_train.std(axis=0)
    scale[scale == 0] = 1.0
    return offset, scale


def write_fold(
    cfg: DictConfig,
    folder: Path,
    train: pd.DataFrame,
    val: pd.DataFrame,
    held_out: np.ndarray,
    derived_from: str,
) -> dict[str, Any]:
    """Fold ``held_out``'s processed data in ``folder`` (see the module), with its validation
    record; returns what the fold holds (rows per split) for the summary."""
    data, source = cfg.data, Path(cfg.paths.processed_dir)
    mask = np.zeros(len(train), dtype=bool)
    mask[held_out] = True
    splits = {
        "train": train.loc[~mask].reset_index(drop=True),
        "val": val.reset_index(drop=True),
        "test": train.loc[mask].reset_index(drop=True),
    }
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if is_images(data):
        from .images import IMAGES_FILE

        shutil.copyfile(source / IMAGES_FILE, folder / IMAGES_FILE)
    elif is_text(data):
        _write_tokenizer(data, source, folder, splits["train"]["text"].tolist())
    else:
        splits = _rescaled(data, source, folder, splits)
    for name, frame in splits.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    _record(cfg, folder, derived_from)
    return {f"{name}_rows": len(frame) for name, frame in splits.items()}


def _rescaled(
    data: DictConfig, source: Path, folder: Path, splits: dict[str, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """The splits with their features scaled as prepare would on the fold's training rows."""
    _, _, features = schemas_for(data.name)
    stats = read_stats(source / "stats.json")
    if list(stats["features"]) != list(features):
        raise ConfigError(
            f"{source / 'stats.json'} scales other features than data/schemas.py names for "
            f"{data.name!r}: prepare the data again (make prepare)."
        )
    prepared_offset = np.asarray(stats["offset"], dtype=np.float64)
    prepared_scale = np.asarray(stats["scale"], dtype=np.float64)

    def raw(frame: pd.DataFrame) -> np.ndarray:
        return frame[features].to_numpy(dtype=np.float64) * prepared_scale + prepared_offset

    offset, scale = scaling(raw(splits["train"]))
    out = {}
    for name, frame in splits.items():
        scaled = ((raw(frame) - offset) / scale).astype(np.float32)
        rows = frame[["id"]].astype(np.int64)
        rows = pd.concat([rows, pd.DataFrame(scaled, columns=features)], axis=1)
        target_dtype = np.int64 if has_class_labels(data) else np.float32
        rows[data.target] = frame[data.target].to_numpy().astype(target_dtype)
        out[name] = rows
    stats = {"features": list(features), "offset": offset.tolist(), "scale": scale.tolist()}
    (folder / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return out


def _write_tokenizer(data: DictConfig, source: Path, folder: Path, texts: list[str]) -> None:
    """The fold's tokenizer, trained on its training texts, and its ``text.json``."""
    from .text import TEXT_FILE, TOKENIZER_FILE, read_text_record, tokenizer_md5
    from .text_prepare import tokenizer_for

    content, vocab_size = tokenizer_for(texts, data)
    record = read_text_record(source)
    record["tokenizer"] = {
        "kind": "pretrained" if data.tokenizer.get("pretrained") else data.tokenizer.kind,
        "vocab_size": vocab_size,
        "md5": tokenizer_md5(content),
    }
    (folder / TOKENIZER_FILE).write_text(content, encoding="utf-8")
    (folder / TEXT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _record(cfg: DictConfig, folder: Path, derived_from: str) -> None:
    """The fold's validation record: what ``record.require_validated`` reads."""
    files = file_md5s(folder)
    record: dict[str, Any] = {
        "passed": True,
        "md5": digest(files),
        "files": files,
        "settings": checked_settings(cfg),
        "derived_from": {"processed_dir": str(cfg.paths.processed_dir), "md5": derived_from},
        "failed_checks": [],
        "report": None,
    }
    if is_images(cfg.data):
        record["images"] = image_files_digest(folder)
    record_path(folder).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
