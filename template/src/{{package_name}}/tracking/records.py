"""What a training run hands to the tracker besides its metrics: the data it read (with a
snapshot of each split: its first rows and summary statistics), its checkpoints, its model and
its training curves. Tracker-agnostic: these call the ``Logger`` interface only."""

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from ..data.checks import read_processed
from ..data.schemas import SPLITS
from ..data.streaming import first_rows, streams
from ..data.version import data_version
from .base import Logger


def record_data(logger: Logger, cfg: DictConfig, md5: str | None = None) -> dict:
    """Each split as a dataset input of the run, versioned by the md5 of the processed files
    themselves (``data/version.py``), and a snapshot of it: ``data/<split>_head.json`` and
    ``data/<split>_describe.json``. ``dvc.lock``'s md5 is kept as a tag beside it; when the two
    differ (the data changed outside ``dvc repro``), the run is tagged and a warning says so."""
    processed = Path(cfg.paths.processed_dir)
    version = data_version(processed, md5=md5)  # md5: already taken of these files, or None
    for split in SPLITS:
        path = processed / f"{split}.parquet"
        # A split too large for memory is described by its first row group (data/streaming.py).
        frame = first_rows(path) if streams(cfg.data, path) else read_processed(path)
        logger.log_dataset(
            frame,
            name=f"{cfg.data.name}-{split}",
            digest=version["md5"],
            source=str(processed / f"{split}.parquet"),
            context="training" if split == "train" else split,
        )
        if getattr(logger, "resumed", False):
            continue  # it keeps its first snapshot (MLflow appends to a table: rows would double)
        for name, table in snapshot(frame).items():
            logger.log_table(table, f"data/{split}_{name}.json")
    tags = {"data.md5": version["md5"]}
    if version["dvc_lock_md5"] is not None:
        tags["data.dvc_lock_md5"] = version["dvc_lock_md5"]
        tags["data.matches_dvc_lock"] = str(version["matches_dvc_lock"]).lower()
        if not version["matches_dvc_lock"]:
            print(
                f"train: warning: {processed} (md5 {version['md5']}) is not the version dvc.lock "
                f"records ({version['dvc_lock_md5']}): it changed outside `dvc repro`. The run "
                "records the md5 of the files it read; run `dvc repro` (or `dvc commit`) to "
                "version them.",
                file=sys.stderr,
            )
    logger.set_tags(tags)
    return version


def snapshot(frame: pd.DataFrame, rows: int = 5) -> dict[str, pd.DataFrame]:
    """What a person looks at first: ``head`` (the first rows) and ``describe`` (count, mean,
    std, min, quartiles and max of each column, one row per column)."""
    summary = frame.describe().T
    summary.insert(0, "column", summary.index.astype(str))
    return {
        "head": frame.head(rows).reset_index(drop=True),
        "describe": summary.reset_index(drop=True),
    }


def record_curves(logger: Logger, output_dir: Path) -> Path | None:
    """``curves.png``: the training and validation loss and the generalisation gap of the run,
    drawn from the trainer's ``history.json``; kept in the run folder and logged."""
    history = output_dir / "history.json"
    if not history.is_file():
        return None
    from .progress import learning_curves

    path = learning_curves(json.loads(history.read_text()), output_dir / "curves.png")
    logger.log_artifact(history, "curves")
    logger.log_artifact(path, "curves")
    return path


def record_outputs(
    logger: Logger, output_dir: Path, served_model: Callable[[Path], tuple[Any, Any]]
) -> None:
    """metrics.json, the best and last checkpoints, and the model with the best weights:
    ``served_model(best.pt)`` returns it as ``predict`` serves it, and an input example (the
    entry point builds it: tracking does not import inference, ``tests/test_layers.py``)."""
    metrics = output_dir / "metrics.json"
    if metrics.is_file():
        logger.log_artifact(metrics)
    checkpoints = output_dir / "checkpoints"
    if logger.log_checkpoints:
        for name in ("best.pt", "last.pt"):
            if (checkpoints / name).is_file():
                logger.log_artifact(checkpoints / name, "checkpoints")
    best = checkpoints / "best.pt"
    if best.is_file() and getattr(logger, "log_model_enabled", True):
        logger.log_model(*served_model(best))
