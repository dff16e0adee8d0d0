"""Validation of a text dataset: its splits, its tokenizer, and what its texts say.

``inspect_text`` checks

- every split against ``TextSplit`` (non-empty, non-blank texts without the characters a
  mis-decoded file leaves; unique ids; class indices) and the config's bounds beside it (texts
  within ``data.text_length`` characters, labels below ``data.num_classes``);
- ``text.json`` (readable, one class name per class) and ``tokenizer.json`` (readable as a
  tokenizer, the md5 ``text.json`` records, at most ``data.tokenizer.vocab_size`` tokens: the
  model's embedding has that many rows);
- ids unique across splits, and the same text (case-folded, whitespace collapsed) in two splits
  (leakage) or repeated within one beyond ``data.max_duplicate_share``;
- drift between train and val/test: of the texts' length in characters (Kolmogorov-Smirnov,
  ``data.drift.max_ks``) and of the labels (``data.drift.max_label_tvd``).
"""

import json
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from ..config import as_dict
from .checks import (
    Failure,
    Validation,
    drift_failures,
    duplicated_content,
    overlapping_ids,
    read_processed_files,
    schema_failures,
)
from .record import DEFAULT_MAX_DUPLICATE_SHARE
from .schemas import TEXT_COLUMNS, TextSplit, text_failures
from .text import TEXT_FILE, TOKENIZER_FILE, tokenizer_from_json, tokenizer_md5
from .text_prepare import normalised


def content_frames(splits: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each split as ``id`` and its texts' normalised content (what duplicates compare)."""
    return {
        name: pd.DataFrame({"id": frame["id"], "content": normalised(frame["text"].astype(str))})
        for name, frame in splits.items()
    }


def record_failures(contents: dict[str, bytes], data: DictConfig) -> list[Failure]:
    """``text.json`` and ``tokenizer.json``: readable, consistent, and within the config."""
    failures = []
    try:
        record = json.loads(contents[TEXT_FILE])
        recorded_md5 = record["tokenizer"]["md5"]
        class_names = list(record["class_names"])
    except (ValueError, KeyError, TypeError) as error:
        reason = " ".join(str(error).split())[:120]
        failures.append(Failure(TEXT_FILE, "<file>", "readable JSON with class_names, tokenizer",
                                [reason]))  # fmt: skip
        recorded_md5, class_names = None, None
    if class_names is not None and len(class_names) != int(data.num_classes):
        failures.append(
            Failure(TEXT_FILE, "class_names", "one per class (data.num_classes)",
                    class_names[:5], [], len(class_names))
        )  # fmt: skip
    try:
        content = contents[TOKENIZER_FILE].decode("utf-8")
        tokenizer = tokenizer_from_json(content)
    except Exception as error:  # tokenizers raises its own Exception type for a bad file
        reason = " ".join(str(error).split())[:120]
        return [*failures, Failure(TOKENIZER_FILE, "<file>", "readable tokenizer", [reason])]
    actual = tokenizer_md5(content)
    if recorded_md5 is not None and recorded_md5 != actual:
        failures.append(
            Failure(TOKENIZER_FILE, "<file>",
                    f"md5 as text.json records ({recorded_md5}): edited or replaced since "
                    "prepare", [actual])
        )  # fmt: skip
    size, limit = tokenizer.get_vocab_size(), int(data.tokenizer.vocab_size)
    if size > limit:
        failures.append(
            Failure(TOKENIZER_FILE, "vocab", f"at most {limit} tokens (data.tokenizer.vocab_size)",
                    [size], [], size)
        )  # fmt: skip
    return failures


def length_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A split as its texts' lengths in characters (column ``text``) and its labels: what the
    drift checks compare."""
    return pd.DataFrame({"text": frame["text"].str.len(), "label": frame["label"]})


def inspect_text(cfg: DictConfig) -> Validation:
    data = cfg.data
    processed_dir = Path(cfg.paths.processed_dir)
    result, contents, splits = read_processed_files(
        processed_dir,
        [TEXT_FILE, TOKENIZER_FILE],
        lambda frame, name: [
            *schema_failures(TextSplit, frame, name, TEXT_COLUMNS),
            *text_failures(frame, name, data),
        ],
    )
    for name in (TEXT_FILE, TOKENIZER_FILE):
        if name not in contents:
            result.failures.append(Failure(name, "<file>", "exists", [str(processed_dir / name)]))
    if TOKENIZER_FILE in contents and TEXT_FILE in contents:
        result.failures += record_failures(contents, data)
    if result.failures:  # duplicates and drift mean nothing on splits that break their schema
        return result
    result.failures += overlapping_ids(splits)
    max_share = float(data.get("max_duplicate_share", DEFAULT_MAX_DUPLICATE_SHARE))
    duplicated, result.warnings = duplicated_content(content_frames(splits), ["content"], max_share)
    result.failures += duplicated
    if not result.failures:
        drift = as_dict(data.drift, resolve=False)
        lengths = {name: length_frame(frame) for name, frame in splits.items()}
        for name in ("val", "test"):
            for failure in drift_failures(
                lengths["train"], lengths[name], name, ["text"], "label", True, drift
            ):
                if failure.column == "text":  # the KS statistic of the lengths
                    failure.check = failure.check.replace("drift:", "drift of the length:", 1)
                result.failures.append(failure)
    return result
