"""Batch inference on raw texts: ``python -m <package>.predict`` for text data.

``input=`` is a CSV, Parquet or JSON-lines (``.jsonl``) file with a ``text`` column (an ``id``
column is kept when present). Every text is tokenized with the CHECKPOINT's tokenizer (the copy
the text task keeps in the checkpoint, never ``data/processed/tokenizer.json``, which a later
``prepare`` may have replaced), in batches of ``batch_size``, and ``output`` gets one row per
input row: ``id`` (if any), the task's columns (``prediction``, ``prob_<class>``) and
``class_name``. A missing ``text`` column, or an empty or non-string text, refuses the whole run
(exit 5), naming the rows; nothing is written.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from .batch import _unreadable, output_and_batch_size, write_table
from .data.checks import DataValidationError
from .errors import ConfigError
from .inference import checkpoint_task, load_checkpoint, predictor, trained_config
from .tasks.text_classification import TextClassification

TEXT_SUFFIXES = (".csv", ".parquet", ".jsonl")
#: How many bad rows the error names (it says how many there are in all).
NAMED_BAD_ROWS = 10


def predict_texts(cfg: DictConfig) -> pd.DataFrame:
    """``python -m <package>.predict`` for texts: the predictions, also written to ``output``."""
    output, batch_size = output_and_batch_size(cfg)
    state, path = load_checkpoint(cfg.ckpt_path)
    data = trained_config(state, path, cfg).data
    frame = read_texts(Path(str(cfg.input)))
    texts = checked_texts(frame, str(cfg.input))
    task = checkpoint_task(state, path)  # its tokenizer: the checkpoint's
    assert isinstance(task, TextClassification)  # predict reads texts for text data only
    model, device = predictor(state, path, cfg, cfg.trainer.accelerator)
    answers = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            ids = torch.as_tensor(task.encode_texts(texts[start : start + batch_size]))
            answers.append(model(ids.to(device)).float().cpu())
    out = torch.cat(answers).double().numpy()
    columns = task.columns(out)
    names = class_names(data, out.shape[1], cfg.paths.processed_dir, task.tokenizer_json)
    result = pd.DataFrame(
        {
            **({"id": frame["id"].to_numpy()} if "id" in frame.columns else {}),
            **columns,
            "class_name": np.asarray(names, dtype=object)[columns["prediction"]],
        }
    )
    write_table(result, output)
    return result


def class_names(data: DictConfig, count: int, processed_dir=None, tokenizer_json=None) -> list[str]:
    """The checkpoint's ``data.class_names``; else those ``prepare`` wrote to ``text.json`` in
    ``processed_dir`` when that is the preparation the checkpoint was trained on (the same
    tokenizer md5); else the class indices as text."""
    from .data.text import read_text_record, tokenizer_md5

    names = data.get("class_names")
    if not names and processed_dir is not None and tokenizer_json is not None:
        try:
            record = read_text_record(processed_dir)
        except (OSError, ValueError):
            record = {}
        same = record.get("tokenizer", {}).get("md5") == tokenizer_md5(tokenizer_json)
        names = record.get("class_names") if same else None
    if not names or len(names) != count:
        return [str(i) for i in range(count)]
    return [str(n) for n in names]


def read_texts(path: Path) -> pd.DataFrame:
    """The rows of ``path``: CSV, Parquet or JSON lines, by suffix."""
    if path.suffix not in TEXT_SUFFIXES:
        raise ConfigError(f"input={path}: expected a file ending in {', '.join(TEXT_SUFFIXES)}.")
    if not path.is_file():
        raise FileNotFoundError(f"input={path} does not exist")
    try:
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as error:  # each reader has its own errors: name the file and the cause
        if path.suffix != ".jsonl":
            raise DataValidationError(_unreadable(path, error)) from None
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataValidationError(
            f"input={path} cannot be read as JSON lines ({type(error).__name__}: {cause}): "
            "each line must be one JSON object with a `text` key."
        ) from None


def checked_texts(frame: pd.DataFrame, where: str) -> list[str]:
    """The ``text`` column as a list of strings; refused, naming the rows, when it cannot be."""
    if "text" not in frame.columns:
        found = ", ".join(map(str, frame.columns[:10])) or "none"
        raise DataValidationError(
            f"input={where} has no `text` column (found: {found}): predict reads the texts "
            "from a column named `text` (an `id` column is kept when present)."
        )
    if frame.empty:
        raise DataValidationError(f"input={where} has no rows: nothing to predict.")
    bad = [
        f"row {row}: {'empty text' if isinstance(t, str) else f'not a string ({t!r})'}"
        for row, t in enumerate(frame["text"].tolist())
        if not isinstance(t, str) or not t.strip()
    ]
    if bad:
        named = "\n".join(f"  {line}" for line in bad[:NAMED_BAD_ROWS])
        more = f"\n  ... and {len(bad) - NAMED_BAD_ROWS} more" if len(bad) > NAMED_BAD_ROWS else ""
        raise DataValidationError(
            f"{len(bad)} of the {len(frame)} texts in input={where} cannot be predicted (rows "
            f"counted from 0), so nothing was written; fix or remove them:\n{named}{more}"
        )
    return frame["text"].tolist()
