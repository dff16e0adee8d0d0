"""What a training run hands to the tracker besides its metrics: the data it read, its
checkpoints and its model. Tracker-agnostic: these call the ``Logger`` interface only."""

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig

from ..data.schemas import SPLITS
from ..data.version import data_version
from .base import Logger


def record_data(logger: Logger, cfg: DictConfig) -> dict[str, str]:
    """Each split as a dataset input of the run, versioned by the DVC md5 of data/processed."""
    processed = Path(cfg.paths.processed_dir)
    version = data_version(processed)
    for split in SPLITS:
        frame = pd.read_parquet(processed / f"{split}.parquet")
        logger.log_dataset(
            frame,
            name=f"{cfg.data.name}-{split}",
            digest=version["md5"],
            source=str(processed / f"{split}.parquet"),
            context="training" if split == "train" else split,
        )
    logger.set_tags({"data.md5": version["md5"], "data.version_source": version["source"]})
    return version


def record_outputs(
    logger: Logger, output_dir: Path, model: torch.nn.Module, input_example: Any
) -> None:
    """metrics.json, the best and last checkpoints, and the model (with the best weights)."""
    metrics = output_dir / "metrics.json"
    if metrics.is_file():
        logger.log_artifact(metrics)
    checkpoints = output_dir / "checkpoints"
    if logger.log_checkpoints:
        for name in ("best.pt", "last.pt"):
            if (checkpoints / name).is_file():
                logger.log_artifact(checkpoints / name, "checkpoints")
    best = checkpoints / "best.pt"
    if best.is_file():
        state = torch.load(best, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        logger.log_model(model.eval(), input_example)
