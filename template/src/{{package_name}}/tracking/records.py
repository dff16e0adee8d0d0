"""What a training run hands to the tracker besides its metrics: the data it read (with a
snapshot of each split: its first rows and summary statistics), its checkpoints, its model and
its training curves. Tracker-agnostic: these call the ``Logger`` interface only."""

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig
from torch import nn

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
    # The data card validate wrote of these very files (data/card.py), where the tracker keeps
    # files; a card of other files (validated elsewhere) would describe other data.
    card = Path(cfg.paths.reports_dir) / "data_card.md"
    log_artifact = getattr(logger, "log_artifact", None)
    if log_artifact is not None and card.is_file() and version["md5"] in card.read_text():
        log_artifact(card, "data")
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


# ---- text models: what the checklist asks an NLP run to record ---------------------------------


def text_model_params(model: nn.Module, tokenizer: Any) -> dict[str, Any]:
    """The tokenizer's type and vocabulary size, the embedding size, layers, heads and the
    parameter count of a text model, as run parameters (``text.*``). ``tokenizer``: a
    ``tokenizers.Tokenizer`` (the task's)."""
    config = getattr(model, "config", None)  # a Hugging Face model (models/lora.py) has one
    shape = {
        "embedding_size": getattr(model, "d_model", getattr(config, "hidden_size", None)),
        "layers": getattr(model, "n_layers", getattr(config, "num_hidden_layers", None)),
        "heads": getattr(model, "n_heads", getattr(config, "num_attention_heads", None)),
    }
    return {
        "text.tokenizer.type": type(tokenizer.model).__name__,  # WordPiece, BPE, ...
        "text.tokenizer.vocab_size": tokenizer.get_vocab_size(),
        **{f"text.{key}": value for key, value in shape.items() if value is not None},
        "text.parameters": sum(p.numel() for p in model.parameters()),
        "text.trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


@torch.no_grad()
def inference_times(
    model: nn.Module, dataset: Any, batch_size: int, device: torch.device, alone: int = 32
) -> dict[str, float]:
    """Milliseconds of the model's forward pass on ``dataset`` (the validation split): per batch
    of ``batch_size`` texts (the split in order, each batch padded to its longest text), per
    text within those batches, and per text run alone (the median over its first ``alone``):
    the latency of one request. One batch runs first, untimed (the first call allocates)."""
    was_training = model.training
    model.eval()
    rows = list(range(len(dataset)))
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    def run(indices: list[int]) -> float:
        inputs = dataset.__getitems__(indices)[0].to(device)
        start = time.perf_counter()
        model(inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    run(batches[0])
    total = sum(run(batch) for batch in batches)
    single = sorted(run([index]) for index in rows[:alone])
    model.train(was_training)
    return {
        "inference/ms_per_batch": 1000 * total / len(batches),
        "inference/ms_per_sample": 1000 * total / len(rows),
        "inference/ms_per_sample_alone": 1000 * single[len(single) // 2],
        "inference/batch_size": float(batch_size),
    }


@torch.no_grad()
def sample_predictions(
    model: nn.Module,
    dataset: Any,
    class_names: list[str] | None,
    count: int,
    device: torch.device,
    width: int = 300,
) -> pd.DataFrame:
    """The first ``count`` texts of ``dataset`` with their true and predicted classes and the
    model's confidence (the predicted class's probability): what a person reads to see what
    the model does. Texts longer than ``width`` characters are cut."""
    was_training = model.training
    model.eval()
    count = min(count, len(dataset))
    inputs, targets = dataset.__getitems__(list(range(count)))
    probabilities = torch.softmax(model(inputs.to(device)).float(), dim=-1).cpu()
    model.train(was_training)
    confidence, predicted = probabilities.max(dim=-1)
    names = list(class_names) if class_names else None

    def name(index: int) -> str:
        return names[index] if names and index < len(names) else str(index)

    texts = [text if len(text) <= width else text[: width - 1] + "\u2026" for text in dataset.texts]
    return pd.DataFrame(
        {
            "text": texts[:count],
            "true": [name(int(t)) for t in targets],
            "predicted": [name(int(p)) for p in predicted],
            "confidence": [round(float(c), 4) for c in confidence],
        }
    )


def record_text_model(
    logger: Logger,
    model: nn.Module,
    dataset: Any,
    tokenizer: Any,
    *,
    class_names: list[str] | None,
    batch_size: int,
    samples: int,
    device: torch.device,
    step: int,
) -> dict[str, Any]:
    """A text run's records (``text.*`` parameters, ``inference/*`` metrics, and the table
    ``predictions/val_samples.json``), measured on the validation split at the end of
    training; returns the parameters and times. Times vary from run to run: they are logged,
    never written into metrics.json (a resumed run's metrics are bit-identical)."""
    params = text_model_params(model, tokenizer)
    times = inference_times(model, dataset, batch_size, device)
    logger.log_params(params)
    logger.log_metrics(times, step=step)
    if samples > 0:
        table = sample_predictions(model, dataset, class_names, samples, device)
        logger.log_table(table, "predictions/val_samples.json")
    return {**params, **times}
