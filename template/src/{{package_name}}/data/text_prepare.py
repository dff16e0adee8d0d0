"""Prepare a text dataset: source -> labelled, de-duplicated splits -> tokenizer -> data/processed.

1. The texts and labels come from ``data.source`` (``text_sources.py``); labels that are names
   become class indices in ``data.class_names`` order (null: the sorted names).
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
from .checks import DataValidationError
from .schemas import SPLITS, TEXT_COLUMNS
from .text import PAD_ID, TEXT_FILE, TOKENIZER_FILE, tokenizer_md5, train_tokenizer
from .text_sources import load_text_source


def normalised(texts: pd.Series) -> pd.Series:
    """Texts as compared for duplicates: case-folded, whitespace collapsed."""
    return texts.str.casefold().str.split().str.join(" ")


def class_indices(labels: pd.Series, data: DictConfig) -> tuple[np.ndarray, list[str]]:
    """Labels as class indices, and the class names in index order."""
    names = list(data.class_names) if data.get("class_names") else None
    if pd.api.types.is_integer_dtype(labels):
        count = int(data.num_classes)
        return labels.to_numpy(dtype=np.int64), names or [str(i) for i in range(count)]
    values = labels.astype(str)
    names = names or sorted(values.unique())
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise DataValidationError(
            f"data.source={data.source!r} has labels that are not in data.class_names: "
            f"{unknown[:10]}: add them to data.class_names (or set it to null)."
        )
    return values.map(index).to_numpy(dtype=np.int64), names


def tokenizer_for(train_texts: list[str], data: DictConfig) -> str:
    """The tokenizer's JSON text: trained on the training texts, or a pretrained one's."""
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
    from .text import tokenizer_from_json

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
    return content


def prepare_text(
    cfg: DictConfig, split: Callable[..., dict], write_processed: Callable[..., None]
) -> dict[str, pd.DataFrame]:
    """``split`` and ``write_processed`` are prepare.py's (the command's own, as for tables)."""
    data = cfg.data
    frame = load_text_source(data)
    labels, class_names = class_indices(frame["label"], data)
    if len(class_names) != int(data.num_classes):
        raise DataValidationError(
            f"data.source={data.source!r} holds {len(class_names)} classes "
            f"({class_names[:12]}), but data.num_classes is {data.num_classes}: set "
            "data.num_classes (and data.class_names) to match the data."
        )
    rows = pd.DataFrame(
        {
            "id": frame["id"].to_numpy(dtype=np.int64)
            if "id" in frame.columns
            else np.arange(len(frame), dtype=np.int64),
            "text": frame["text"].astype(str),
            "label": labels,
        }
    )
    if "split" in frame.columns:
        rows["split"] = frame["split"].to_numpy()
    rows = rows[~normalised(rows["text"]).duplicated()].reset_index(drop=True)
    if "split" in rows.columns:
        splits = {
            name: rows.loc[rows["split"] == name, TEXT_COLUMNS].reset_index(drop=True)
            for name in SPLITS
        }
    else:
        splits = split(rows[TEXT_COLUMNS], data)
    content = tokenizer_for(splits["train"]["text"].tolist(), data)
    from .text import tokenizer_from_json

    record = {
        "class_names": class_names,
        "tokenizer": {
            "kind": "pretrained" if data.tokenizer.get("pretrained") else data.tokenizer.kind,
            "vocab_size": tokenizer_from_json(content).get_vocab_size(),
            "md5": tokenizer_md5(content),
        },
    }
    write_processed(
        splits, record, Path(cfg.paths.processed_dir), TEXT_FILE, {TOKENIZER_FILE: content}
    )
    return splits
