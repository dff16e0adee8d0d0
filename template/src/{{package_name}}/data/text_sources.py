"""Where texts come from: the bundled docstrings corpus, or a table of yours.

``load_text_source(data)`` returns one DataFrame with ``text`` and ``label`` columns (the label
a class name or index, as the source has it), and ``split`` and ``id`` where the source has them.
A source file is a ``.csv``, ``.parquet`` or ``.jsonl`` (JSON lines) table; one that cannot be
read, or lacks a column, is a ``SourceError`` naming the file and the fix (exit 5). Labels are
class names (``concurrency``) or class indices (``0``); ``text_prepare`` turns them into indices.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ..config import as_dict
from .sources import SourceError, read_csv, read_parquet

#: The bundled corpus, beside this module (see its LICENSE-PSF.txt).
CORPUS = Path(__file__).parent / "corpus" / "docstrings.jsonl.gz"


def load_bundled() -> pd.DataFrame:
    """The docstrings of the Python 3.11 standard library, labelled by module family."""
    if not CORPUS.is_file():
        raise FileNotFoundError(
            f"{CORPUS} does not exist: the bundled text corpus ships with text projects only "
            "(task=text_classification); set data.source to a file of your own texts."
        )
    return pd.read_json(CORPUS, lines=True, compression="gzip", dtype={"text": str})


def read_jsonl(path: Path) -> pd.DataFrame:
    """A JSON-lines file (one object per line) as a DataFrame, or a SourceError naming it."""
    try:
        return pd.read_json(path, lines=True, dtype=False)
    except ValueError as error:
        reason = " ".join(str(error).split())
        raise SourceError(f"{path} cannot be read as JSON lines: {reason}") from None


def load_text_source(data: DictConfig) -> pd.DataFrame:
    """The raw texts and labels of ``data.source``: ``bundled`` or a .csv/.parquet/.jsonl file."""
    if data.source == "bundled":
        frame = load_bundled()
    else:
        path = Path(data.source)
        if not path.is_file():
            raise FileNotFoundError(f"data.source={data.source!r} is not a file")
        if path.suffix == ".parquet":
            frame = read_parquet(path)
        elif path.suffix == ".csv":
            options = as_dict(data.get("read_options") or OmegaConf.create({}), resolve=False)
            frame = read_csv(path, options)
        elif path.suffix in (".jsonl", ".ndjson"):
            frame = read_jsonl(path)
        else:
            raise SourceError(
                f"data.source={data.source!r} is a {path.suffix or 'suffix-less'} file: a text "
                "source is a .csv, .parquet or .jsonl (JSON lines) table with a `text` column "
                "and a label column (data.target); convert it, or name it by what it holds."
            )
    target = data.target
    missing = [c for c in ("text", target) if c not in frame.columns]
    if missing:
        raise SourceError(
            f"data.source={data.source!r} has no {' and no '.join(missing)} column (it has "
            f"{list(frame.columns)[:12]}): a text source needs a `text` column and a "
            f"`{target}` column (data.target)."
        )
    if target != "label":  # the source's own `label` column, if any, is not the target
        frame = frame.drop(columns=["label"], errors="ignore").rename(columns={target: "label"})
    if "id" not in frame.columns:  # a row's id: its place in the source
        frame = frame.assign(id=np.arange(len(frame), dtype=np.int64))
    # What prepare keeps of the source (data/raw/<name>.parquet): the columns it uses.
    return frame[[c for c in ("id", "text", "label", "split") if c in frame.columns]]
