"""Validation of a text dataset: its splits, its tokenizer, and what its texts say.

``inspect_text`` checks every split against ``TextSplit`` (non-empty texts, class indices below
``data.num_classes``), ids unique across splits, the same text (case-folded, whitespace
collapsed) in two splits (leakage), ``text.json`` and ``tokenizer.json`` present and matching
(the record's md5 covers both), and label drift between train and val/test.
"""

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from .checks import (
    Failure,
    Validation,
    drift_failures,
    duplicated_content,
    overlapping_ids,
    read_split,
    schema_failures,
)
from .record import DEFAULT_MAX_DUPLICATE_SHARE
from .schemas import SPLITS, TEXT_COLUMNS, TextSplit, label_range_failures
from .text import TEXT_FILE, TOKENIZER_FILE, tokenizer_md5
from .text_prepare import normalised
from .version import bytes_md5


def content_frames(splits: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each split as ``id`` and its texts' normalised content (what duplicates compare)."""
    return {
        name: pd.DataFrame({"id": frame["id"], "content": normalised(frame["text"].astype(str))})
        for name, frame in splits.items()
    }


def inspect_text(cfg: DictConfig) -> Validation:
    data = cfg.data
    processed_dir = Path(cfg.paths.processed_dir)
    result = Validation()
    contents = {}
    for name in (*(f"{s}.parquet" for s in SPLITS), TEXT_FILE, TOKENIZER_FILE):
        path = processed_dir / name
        if path.is_file():
            contents[name] = path.read_bytes()
            result.files[name] = bytes_md5(contents[name])
        elif not name.endswith(".parquet"):
            result.failures.append(Failure(name, "<file>", "exists", [str(path)]))
    splits = {}
    for name in SPLITS:
        file = f"{name}.parquet"
        frame, unreadable = read_split(processed_dir / file, contents.get(file))
        result.failures += unreadable
        if frame is not None:
            result.failures += schema_failures(TextSplit, frame, name, TEXT_COLUMNS)
            result.failures += label_range_failures(frame, name, int(data.num_classes))
            splits[name] = frame
    if TOKENIZER_FILE in contents and TEXT_FILE in contents:
        import json

        recorded = json.loads(contents[TEXT_FILE]).get("tokenizer", {}).get("md5")
        actual = tokenizer_md5(contents[TOKENIZER_FILE].decode("utf-8"))
        if recorded != actual:
            result.failures.append(
                Failure(TOKENIZER_FILE, "<file>", "the tokenizer text.json records", [actual])
            )
    if result.failures:
        return result
    result.failures += overlapping_ids(splits)
    max_share = float(data.get("max_duplicate_share", DEFAULT_MAX_DUPLICATE_SHARE))
    duplicated, result.warnings = duplicated_content(content_frames(splits), ["content"], max_share)
    result.failures += duplicated
    if not result.failures:
        drift = OmegaConf.to_container(data.drift)
        for name in ("val", "test"):
            result.failures += drift_failures(
                splits["train"], splits[name], name, [], "label", True, drift
            )
    return result
