"""Prepare a text dataset: source -> labelled, de-duplicated splits -> tokenizer -> data/processed.

1. The texts and labels come from ``data.source`` (``text_sources.py``); labels that are names
   become class indices in ``data.class_names`` order (null: the sorted names). The rows are
   checked as a processed split is (``TextSplit``: not empty, no mis-decoded characters, unique
   ids; lengths within ``data.text_length``, labels below ``data.num_classes``): a source that
   breaks them is refused, naming its rows, and nothing is written. A source that passes is
   kept as ``data/raw/<name>.parquet``, written once (as a table's raw data).
2. Texts with the same content (case-folded, whitespace collapsed) are kept once: a copy in two
   splits would be leakage, and validate refuses it.
3. The rows are split into train, val and test (stratified by label; or by the source's own
   ``split`` column), and the tokenizer is trained on the TRAINING texts only (or a pretrained
   model's ``tokenizer.json`` is taken, ``data.tokenizer.pretrained``).
4. ``data/processed/`` gets ``{train,val,test}.parquet`` (``id``, ``text``, ``label``),
   ``tokenizer.json`` and ``text.json`` (class names, tokenizer kind, vocabulary size, md5),
   all or nothing.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from ..errors import ConfigError
from .checks import DataValidationError, Failure, format_failures, schema_failures
from .schemas import SPLITS, TEXT_COLUMNS, TextSplit, text_failures
from .text import (
    PAD_ID,
    TEXT_FILE,
    TOKENIZER_FILE,
    tokenizer_from_json,
    tokenizer_md5,
    train_tokenizer,
)
from .text_sources import load_text_source


def normalised(texts: pd.Series) -> pd.Series:
    """Texts as compared for duplicates: case-folded, whitespace collapsed."""
    return texts.str.casefold().str.split().str.join(" ")


def class_indices(labels: pd.Series, data: DictConfig) -> tuple[np.ndarray, list[str]]:
    """Labels as class indices, and the class names in index order.

    A source's labels are class names (any text) or class indices (whole numbers, as a CSV or
    JSON file has them); a label that is neither, or a name not in ``data.class_names``, is
    refused, naming it. An index beyond ``data.num_classes`` is left to the checks that name
    its rows (``schemas.text_failures``).
    """
    names = list(data.class_names) if data.get("class_names") else None
    missing = labels.isna()
    if missing.any():
        rows = [int(i) for i in np.flatnonzero(missing.to_numpy())[:5]]
        raise DataValidationError(
            f"data.source={data.source!r} has {int(missing.sum())} row(s) without a label "
            f"(column {data.target!r}; rows {rows}): give every text its class, or drop it."
        )
    numbers = pd.to_numeric(labels, errors="coerce") if labels.dtype != object else None
    if numbers is not None and not numbers.isna().any() and (numbers % 1 == 0).all():
        count = int(data.num_classes)
        return numbers.to_numpy(dtype=np.int64), names or [str(i) for i in range(count)]
    values = labels.astype(str)
    names = names or sorted(values.unique())
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        rows = [int(i) for i in np.flatnonzero(~values.isin(index).to_numpy())[:5]]
        raise DataValidationError(
            f"data.source={data.source!r} has labels (column {data.target!r}) that are not in "
            f"data.class_names: {unknown[:10]} (rows {rows}): add them to data.class_names (or "
            "set it to null)."
        )
    return values.map(index).to_numpy(dtype=np.int64), names


def source_rows(frame: pd.DataFrame, data: DictConfig) -> tuple[pd.DataFrame, list[str]]:
    """The source's rows as a processed split has them (``id``, ``text``, ``label``; and its
    ``split`` where it has one), and the class names; or a ``DataValidationError`` naming every
    row that breaks ``TextSplit`` and the config's bounds (nothing is written then)."""
    labels, class_names = class_indices(frame["label"], data)
    if len(class_names) != int(data.num_classes):
        raise DataValidationError(
            f"data.source={data.source!r} holds {len(class_names)} classes in its label column "
            f"{data.target!r} ({class_names[:12]}), but data.num_classes is {data.num_classes}: "
            "set data.num_classes (and data.class_names) to match the data, or fix the labels."
        )
    text = frame["text"]
    if text.dtype != object or not text.map(lambda t: isinstance(t, str) or t is None).all():
        # Numbers read from a CSV cell are text too; a missing cell stays missing.
        text = text.map(lambda t: t if isinstance(t, str) or pd.isna(t) else str(t))
        text = text.where(text.notna(), None)
    rows = pd.DataFrame(
        {"id": frame["id"].to_numpy(), "text": text.to_numpy(dtype=object), "label": labels}
    )
    table = f"source {data.source}"
    failures = schema_failures(TextSplit, rows, table, TEXT_COLUMNS)
    failures += text_failures(rows, table, data)
    if "split" in frame.columns:
        unknown = ~frame["split"].isin(SPLITS).to_numpy()
        if unknown.any():
            failures.append(
                Failure(table, "split", f"isin({list(SPLITS)})",
                        sorted(set(map(str, frame["split"][unknown])))[:5],
                        [int(i) for i in np.flatnonzero(unknown)[:5]], int(unknown.sum()))
            )  # fmt: skip
        rows["split"] = frame["split"].to_numpy()
    if failures:
        raise DataValidationError(
            f"The texts of {data.name!r} (data.source={data.source!r}) break the text schema "
            f"(data/schemas.py, TextSplit; data.text_length, data.num_classes), so nothing was "
            f"written; rows are counted from 0 in the source:\n{format_failures(failures)}"
        )
    return rows.astype({"id": np.int64, "label": np.int64}), class_names


def tokenizer_for(train_texts: list[str], data: DictConfig) -> tuple[str, int]:
    """The tokenizer's JSON text and its vocabulary size: trained on the training texts, or a
    pretrained one's."""
    settings = data.tokenizer
    if settings.get("pretrained"):
        path = Path(settings.pretrained)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"data.tokenizer.pretrained={settings.pretrained!r}: no tokenizer.json there"
            )
        content = path.read_text(encoding="utf-8")
    else:
        tokenizer = train_tokenizer(
            train_texts,
            kind=settings.kind,
            vocab_size=int(settings.vocab_size),
            lowercase=bool(settings.get("lowercase", True)),
        )
        content = tokenizer.to_str()
    tokenizer = tokenizer_from_json(content)
    size, limit = tokenizer.get_vocab_size(), int(settings.vocab_size)
    if size > limit:
        raise ConfigError(
            f"the tokenizer has {size} tokens but data.tokenizer.vocab_size is {limit}: the "
            f"model's embedding would be too small. Set data.tokenizer.vocab_size to {size}."
        )
    pad = tokenizer.token_to_id("[PAD]")
    if pad is not None and pad != PAD_ID:
        raise ConfigError(
            f"the tokenizer's [PAD] token is id {pad}, not {PAD_ID}: the models mask id "
            f"{PAD_ID} out. Use a tokenizer whose padding token is id 0."
        )
    return content, size


def prepare_text(
    cfg: DictConfig,
    split: Callable[..., dict],
    write_processed: Callable[..., None],
    keep_raw: Callable[..., tuple[pd.DataFrame, list[str]]],
) -> dict[str, pd.DataFrame]:
    """``split``, ``write_processed`` and ``keep_raw`` are prepare.py's (the command's own, as
    for tables): the source is checked before anything is written, then kept in data/raw."""
    data = cfg.data
    rows, class_names = keep_raw(
        data,
        Path(cfg.paths.raw_dir),
        lambda: load_text_source(data),
        lambda f: source_rows(f, data),
    )
    rows = rows[~normalised(rows["text"]).duplicated()].reset_index(drop=True)
    if "split" in rows.columns:  # the source's own split
        splits = {
            name: rows.loc[rows["split"] == name, TEXT_COLUMNS].reset_index(drop=True)
            for name in SPLITS
        }
        empty = [name for name, part in splits.items() if part.empty]
        if empty:
            raise DataValidationError(
                f"data.source={data.source!r} has a split column with no "
                f"{' and no '.join(empty)} rows: every split needs texts (or drop the column "
                "to let prepare split the rows)."
            )
    else:
        splits = split(rows[TEXT_COLUMNS], data)
    content, vocab_size = tokenizer_for(splits["train"]["text"].tolist(), data)
    record = {
        "class_names": class_names,
        "tokenizer": {
            "kind": "pretrained" if data.tokenizer.get("pretrained") else data.tokenizer.kind,
            "vocab_size": vocab_size,
            "md5": tokenizer_md5(content),
        },
    }
    write_processed(
        splits, record, Path(cfg.paths.processed_dir), TEXT_FILE, {TOKENIZER_FILE: content}
    )
    return splits
