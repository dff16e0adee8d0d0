"""Prepare the data: source -> ``data/raw`` (written once) -> ``data/processed`` (Parquet splits).

    python -m <package>.data.prepare [overrides]      # e.g. data.val_fraction=0.2

1. The raw table is fetched from its source (``sources.py``), checked against its raw schema and
   written to ``data/raw/<name>.parquet`` once: raw data is immutable, so an existing file is
   read, never rewritten. Delete it to fetch again. The file records the ``data.source`` it
   came from, and prepare refuses to go on when the config now names another source.
2. The rows are split into train, val and test with a fixed seed (stratified by label for
   classification), and transformed: features standardised with the training split's mean and
   standard deviation (saved in ``stats.json``, so that prediction can apply the same
   transform).
3. The splits are written to ``data/processed/`` as Parquet, all or nothing: they are built in a
   temporary folder that replaces the old one only when complete.

Image datasets (``data.image_shape`` set) are files, not tables (``image_sources.py``): the
bundled digits are written once as PNG files to ``data/raw/digits/<class>/<id>.png``; a folder
or a manifest of yours is read where it is. The splits are manifests (``id``, ``path`` relative
to the images' root, ``label``), split as above or by the manifest's own ``split`` column, and
``data/processed/images.json`` records the root and the class names. The pixels are scaled when
they are read (``images.Preprocess``), so there is no ``stats.json``.

Text datasets (``data.tokenizer`` set) are prepared by ``text_prepare.py``: the source's texts
and labels are checked, kept once as ``data/raw/<name>.parquet`` (``keep_raw``), split, and
written with the tokenizer trained on the training split (``tokenizer.json``, ``text.json``).
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from ..config import as_dict, entry_point
from ..errors import ConfigError
from . import large
from .checks import DataValidationError, format_failures, schema_failures
from .schemas import (
    MANIFEST_COLUMNS,
    SPLITS,
    ImageManifest,
    has_class_labels,
    is_images,
    is_text,
    label_range_failures,
    schemas_for,
)
from .sources import load_source

# The key under which data/raw/<name>.parquet records the data.source it was fetched from.
SOURCE_KEY = b"data.source"


def recorded_source(path: Path) -> str | None:
    """The ``data.source`` a raw file was fetched from (None: written before it was recorded)."""
    value = (pq.read_schema(path).metadata or {}).get(SOURCE_KEY)
    return value.decode() if value is not None else None


def _normalised(source: str) -> str:
    # `data/x.csv` and `./data/x.csv` name the same file; relative paths stay relative, so a
    # clone of the project elsewhere still matches.
    return source if source == "bundled" else os.path.normpath(source)


def write_raw(frame: pd.DataFrame, path: Path, source: str) -> None:
    """Write the raw table with its source in the Parquet metadata, all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), SOURCE_KEY: _normalised(source).encode()}
    partial = path.with_suffix(".parquet.tmp")
    pq.write_table(table.replace_schema_metadata(metadata), partial)
    partial.replace(path)


def refuse_another_source(path: Path, data: DictConfig) -> None:
    """A ``DataValidationError`` when the raw file was fetched from another ``data.source``."""
    fetched_from = recorded_source(path)
    if fetched_from is not None and fetched_from != _normalised(data.source):
        raise DataValidationError(
            f"{path} was fetched from data.source={fetched_from!r}, but data.source is now "
            f"{data.source!r}. Raw data is written once and never replaced, so the new source "
            f"was not read: delete {path} and prepare again to take it, or set data.source "
            f"back to {fetched_from!r}."
        )


def keep_raw(
    data: DictConfig,
    raw_dir: Path,
    fetch: Callable[[], pd.DataFrame],
    check: Callable[[pd.DataFrame], Any],
) -> Any:
    """``check(raw table)``: the table read from data/raw if it is there, else ``fetch``-ed and
    written there once, only after ``check`` passed on it (it raises on bad data: then nothing is
    written). What a text dataset's prepare keeps of its source."""
    path = raw_dir / f"{data.name}.parquet"
    if path.exists():
        refuse_another_source(path, data)
        return check(pd.read_parquet(path))
    frame = fetch()
    result = check(frame)
    write_raw(frame, path, data.source)
    return result


def load_raw(data: DictConfig, raw_dir: Path) -> pd.DataFrame:
    """The raw table: read from data/raw if it is there, else fetched, checked and written."""
    raw_schema, _, features = schemas_for(data.name)
    path = raw_dir / f"{data.name}.parquet"
    if path.exists():
        refuse_another_source(path, data)
        frame = pd.read_parquet(path)
    else:
        read_options = as_dict(data.get("read_options") or OmegaConf.create({}), resolve=False)
        frame = load_source(data.source, data.name, read_options)
    columns = ["id", *features, data.target]
    table = f"raw/{data.name}"
    failures = schema_failures(raw_schema, frame, table, columns)
    if failures:
        raise DataValidationError(
            f"The raw data of {data.name!r} (data.source={data.source!r}) breaks its schema "
            f"(data/schemas.py), so nothing was written:\n{format_failures(failures)}"
        )
    if not path.exists():
        write_raw(frame, path, data.source)
    return frame


def split(frame: pd.DataFrame, data: DictConfig) -> dict[str, pd.DataFrame]:
    """Seeded train/val/test splits, stratified by label for classification."""
    from sklearn.model_selection import train_test_split  # only prepare needs scikit-learn

    if not 0 < data.val_fraction < 1 or not 0 < data.test_fraction < 1:
        raise ConfigError("data.val_fraction and data.test_fraction must be between 0 and 1")
    if data.val_fraction + data.test_fraction >= 1:
        raise ConfigError("data.val_fraction + data.test_fraction must leave rows for training")
    stratify = has_class_labels(data)
    rest, test = train_test_split(
        frame,
        test_size=data.test_fraction,
        random_state=data.split_seed,
        stratify=frame[data.target] if stratify else None,
    )
    train, val = train_test_split(
        rest,
        test_size=data.val_fraction / (1 - data.test_fraction),
        random_state=data.split_seed,
        stratify=rest[data.target] if stratify else None,
    )
    return {
        name: part.sort_values("id").reset_index(drop=True)
        for name, part in zip(SPLITS, (train, val, test), strict=True)
    }


def transform(
    splits: dict[str, pd.DataFrame], data: DictConfig, features: list[str]
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Scale the features with statistics of the training split only (no leakage)."""
    train = splits["train"][features].to_numpy(dtype=np.float64)
    offset = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature stays constant instead of dividing by 0
    processed = {}
    for name, part in splits.items():
        out = part[["id"]].astype(np.int64)
        scaled = (part[features].to_numpy(dtype=np.float64) - offset) / scale
        out = pd.concat([out, pd.DataFrame(scaled.astype(np.float32), columns=features)], axis=1)
        target_dtype = np.int64 if has_class_labels(data) else np.float32
        out[data.target] = part[data.target].to_numpy().astype(target_dtype)
        processed[name] = out
    stats = {"features": features, "offset": offset.tolist(), "scale": scale.tolist()}
    return processed, stats


def write_processed(
    processed: dict[str, pd.DataFrame],
    stats: dict,
    out_dir: Path,
    stats_name: str = "stats.json",
    extra: dict[str, str] | None = None,
) -> None:
    """Replace data/processed only once every file of the new version is written (``stats``
    as ``stats_name``: the tables' scaling, or the images' root and classes; ``extra``: more
    text files by name, e.g. a text dataset's tokenizer.json)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".processed-", dir=out_dir.parent))
    try:
        for name, frame in processed.items():
            frame.to_parquet(staging / f"{name}.parquet", index=False)
        (staging / stats_name).write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        for name, content in (extra or {}).items():
            (staging / name).write_text(content, encoding="utf-8")
        # Two renames: the old version is moved aside, never deleted before the new one is in.
        previous = out_dir.with_name(f".{out_dir.name}-previous")
        shutil.rmtree(previous, ignore_errors=True)
        if out_dir.exists():
            out_dir.replace(previous)
        staging.replace(out_dir)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare_images(cfg: DictConfig) -> dict[str, pd.DataFrame]:
    """Image files: their manifest checked, split, written with the images' root and classes."""
    from .image_sources import load_image_source
    from .images import IMAGES_FILE

    data = cfg.data
    source = load_image_source(data, Path(cfg.paths.raw_dir))
    frame = source.frame
    if len(source.class_names) != int(data.num_classes):
        raise DataValidationError(
            f"data.source={data.source!r} holds {len(source.class_names)} classes "
            f"({source.class_names[:12]}), but data.num_classes is {data.num_classes}: set "
            "data.num_classes (and data.class_names) to match the data."
        )
    table = f"source {data.source}"
    failures = schema_failures(ImageManifest, frame[MANIFEST_COLUMNS], table, MANIFEST_COLUMNS)
    failures += label_range_failures(frame, table, int(data.num_classes))
    if failures:
        raise DataValidationError(
            f"The image manifest of {data.name!r} (data.source={data.source!r}) breaks its "
            f"schema (data/schemas.py, ImageManifest), so nothing was written:\n"
            f"{format_failures(failures)}"
        )
    if "split" in frame.columns:  # the manifest's own split
        splits = {
            name: frame.loc[frame["split"] == name, MANIFEST_COLUMNS].reset_index(drop=True)
            for name in SPLITS
        }
        empty = [name for name, part in splits.items() if part.empty]
        if empty:
            raise DataValidationError(
                f"the manifest data.source={data.source!r} has a split column with no "
                f"{' and no '.join(empty)} rows: every split needs images (or drop the column "
                "to let prepare split the rows)."
            )
    else:
        splits = split(frame[MANIFEST_COLUMNS], data)
    root = os.path.normpath(source.root)  # as the config names it: a clone elsewhere still works
    record = {"root": Path(root).as_posix(), "class_names": source.class_names}
    write_processed(splits, record, Path(cfg.paths.processed_dir), IMAGES_FILE)
    return splits


def prepare(cfg: DictConfig) -> dict[str, pd.DataFrame] | dict[str, range]:
    """The processed splits; for a table larger than memory (``large.py``) each split's rows."""
    data = cfg.data
    if is_images(data):
        return prepare_images(cfg)
    if is_text(data):
        from .text_prepare import prepare_text

        return prepare_text(cfg, split, write_processed, keep_raw)
    if large.source_is_large(data, cfg.paths.raw_dir):  # larger than memory: in chunks
        source = _normalised(data.source)
        return large.prepare(cfg, SOURCE_KEY, source)  # row ranges: the splits stay on disk
    _, _, features = schemas_for(data.name)
    frame = load_raw(data, Path(cfg.paths.raw_dir))
    processed, stats = transform(split(frame, data), data, features)
    write_processed(processed, stats, Path(cfg.paths.processed_dir))
    return processed


# Bad data, exit 5: a source that cannot be read (SourceError), data that breaks its schema, a
# missing file, and the ValueError pandas raises on a table it cannot split or transform.
@entry_point("prepare", config_name="train", data_says="", data_errors=(ValueError,))
def main(cfg: DictConfig) -> None:
    processed = prepare(cfg)  # an error's message and exit code: errors.reported
    sizes = ", ".join(f"{name} {len(frame)}" for name, frame in processed.items())
    print(f"prepared {cfg.data.name}: {sizes} rows in {cfg.paths.processed_dir}/")


if __name__ == "__main__":
    main()
