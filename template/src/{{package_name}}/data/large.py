"""prepare and validate for tables larger than memory: the same steps, a chunk at a time.

``prepare.py`` and ``validate.py`` hand a table over to this module when it streams
(``data.stream``: true, or ``auto`` and the table is larger than ``data.stream_above_mb``; see
``streaming.py``). Nothing here holds a whole table: chunks of ``data.row_group_rows`` rows are
read, checked and written one after another. What differs from the in-memory path:

- **splits**: each row's split is drawn from a seeded hash of its id (``data.split_seed``), so a
  row lands in the same split whatever the chunking and whatever the other rows; the fractions
  are met in expectation, not exactly, and the split is not stratified by label (with many rows
  the label shares agree closely; validate's label-drift check still compares them). Rows stay in
  the raw file's order instead of being sorted by id.
- **scaling**: the training rows' mean and standard deviation are accumulated over the chunks in
  a first pass (Chan's parallel update, in float64), then applied in a second pass.
- **output**: every split is written with pyarrow's ParquetWriter in row groups of
  ``data.row_group_rows`` rows, the unit the training stream reads and shuffles.
- **validate**: the schema is checked row group by row group (the same failure table; a failure
  seen in several groups is one row, counts added); unique ids, disjoint ids and repeated rows
  are checked over every row, holding 16 bytes a row (the id and a 64-bit hash of the feature
  values, not the rows); drift is measured on a seeded sample of at most ``DRIFT_SAMPLE`` rows
  of each split instead of every row. The validation record is the same, so ``train`` requires
  it unchanged.
"""

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from ..config import as_dict
from ..errors import ConfigError
from .checks import (
    DataValidationError,
    Failure,
    drift_failures,
    duplicated_content,
    format_failures,
    overlapping_ids,
)
from .schemas import SPLITS, has_class_labels, schemas_for
from .streaming import ROW_GROUP_ROWS, STREAM_ABOVE_MB, merge_failure, stream_setting, streams

#: Rows of each split that validate's drift check compares (a seeded sample beyond that).
DRIFT_SAMPLE = 200_000


# ---- when ---------------------------------------------------------------------------------------


def source_is_large(data: DictConfig, raw_dir: str | Path) -> bool:
    """Whether prepare works in chunks: the raw file (or the source file) streams."""
    if data.get("image_shape") or data.get("pixel_range") is not None:
        return False  # image data: the files helper's path
    if data.source == "bundled":
        return False  # the bundled tables fit in memory
    setting = stream_setting(data)
    if setting is not True and setting is not False:
        raw = Path(raw_dir) / f"{data.name}.parquet"
        if raw.is_file():
            return streams(data, raw)
        source = Path(str(data.source))
        if not source.is_file():
            return False
        if source.suffix == ".parquet":
            return streams(data, source)
        return source.stat().st_size / 2**20 > float(data.get("stream_above_mb", STREAM_ABOVE_MB))
    return setting


def processed_is_large(data: DictConfig, processed_dir: str | Path) -> bool:
    """Whether validate works in chunks: the training split streams, as it will in training."""
    path = Path(processed_dir) / "train.parquet"
    try:
        return path.is_file() and streams(data, path)
    except Exception:  # unreadable: the in-memory path names it
        return False


def _chunk_rows(data: DictConfig) -> int:
    rows = data.get("row_group_rows", ROW_GROUP_ROWS)
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise ConfigError(f"data.row_group_rows must be an integer >= 1, got {rows!r}.")
    return rows


# ---- prepare ------------------------------------------------------------------------------------


def split_of(ids: np.ndarray, seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Each row's split (0 train, 1 val, 2 test) from a seeded hash of its id (splitmix64)."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / 2.0**53  # uniform in [0, 1)
    return np.where(u < test_fraction, 2, np.where(u < test_fraction + val_fraction, 1, 0))


def _raw_chunks(
    data: DictConfig, raw_dir: Path, key: bytes, source: str
) -> tuple[Path, Iterator[pd.DataFrame]]:
    """The raw file (copied from the source file in chunks the first time), read in chunks.

    ``key``: the Parquet metadata key recording the ``data.source`` (``source``, normalised) the
    raw file was fetched from, as ``prepare.py`` writes it.
    """
    path = raw_dir / f"{data.name}.parquet"
    rows = _chunk_rows(data)
    if path.exists():
        fetched_from = (pq.read_schema(path).metadata or {}).get(key)
        if fetched_from is not None and fetched_from.decode() != source:
            raise DataValidationError(
                f"{path} was fetched from data.source={fetched_from.decode()!r}, but data.source "
                f"is now {data.source!r}. Raw data is written once and never replaced: delete "
                f"{path} and prepare again to take the new source, or set data.source back."
            )
    else:
        _copy_source(data, path, rows, key, source.encode())
    return path, _parquet_chunks(path, rows)


def _parquet_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """A Parquet file in chunks of at most ``rows`` rows, a row group at a time (pyarrow's
    ``iter_batches`` kept every batch it had read allocated: 2 GiB after 8M rows)."""
    parquet, offset = pq.ParquetFile(path), 0
    for group in range(parquet.metadata.num_row_groups):
        table = parquet.read_row_group(group)
        for start in range(0, table.num_rows, rows):
            frame = table.slice(start, rows).to_pandas()
            frame.index = range(offset, offset + len(frame))  # failures name the file's rows
            offset += len(frame)
            yield frame


def _source_chunks(data: DictConfig, rows: int) -> Iterator[pd.DataFrame]:
    from .sources import SourceError

    source = Path(str(data.source))
    if not source.is_file():
        raise FileNotFoundError(f"data.source={data.source!r} is not a file")
    if source.suffix == ".parquet":
        yield from _parquet_chunks(source, rows)
    elif source.suffix == ".csv":
        options = as_dict(data.get("read_options") or OmegaConf.create({}), resolve=False)
        try:
            yield from pd.read_csv(source, chunksize=rows, **options)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
            reason = " ".join(str(error).split())
            raise SourceError(f"{source} cannot be read as a CSV file: {reason}") from None
    else:
        raise ValueError(f"data.source={data.source!r}: expected a .csv or .parquet file")


def _copy_source(data: DictConfig, path: Path, rows: int, key: bytes, source: bytes) -> None:
    """The source file into data/raw in chunks, all or nothing (ids added where missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.tmp")
    writer, offset = None, 0
    try:
        for frame in _source_chunks(data, rows):
            if "id" not in frame.columns:
                frame.insert(0, "id", np.arange(offset, offset + len(frame), dtype=np.int64))
            offset += len(frame)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                metadata = {**(table.schema.metadata or {}), key: source}
                schema = table.schema.with_metadata(metadata)
                writer = pq.ParquetWriter(partial, schema)
            writer.write_table(table.cast(writer.schema), row_group_size=rows)
        if writer is not None:
            writer.close()
            writer = None
            partial.replace(path)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)


class _Moments:
    """Count, mean and sum of squared deviations per feature, merged chunk by chunk (Chan)."""

    def __init__(self, width: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(width), np.zeros(width)

    def add(self, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        n, mean = len(values), values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        delta, total = mean - self.mean, self.n + n
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / total
        self.n = total

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.n) if self.n else np.ones_like(self.mean)


def prepare(cfg: DictConfig, key: bytes, source: str) -> dict[str, range]:
    """Raw table -> processed splits in two passes over chunks; returns each split's rows.
    ``key``, ``source``: how the raw file records its source (``_raw_chunks``)."""
    from .checks import schema_failures

    data = cfg.data
    if not 0 < data.val_fraction < 1 or not 0 < data.test_fraction < 1:
        raise ConfigError("data.val_fraction and data.test_fraction must be between 0 and 1")
    if data.val_fraction + data.test_fraction >= 1:
        raise ConfigError("data.val_fraction + data.test_fraction must leave rows for training")
    raw_schema, _, features = schemas_for(data.name)
    columns = ["id", *features, data.target]
    path, chunks = _raw_chunks(data, Path(cfg.paths.raw_dir), key, source)
    where = (int(data.split_seed), float(data.val_fraction), float(data.test_fraction))

    # Pass 1: the raw schema, chunk by chunk, and the training rows' moments.
    moments = _Moments(len(features))
    failures: dict[tuple[str, str, str], Failure] = {}
    for frame in chunks:
        for failure in schema_failures(raw_schema, frame, f"raw/{data.name}", columns):
            merge_failure(failures, failure)
        if not failures:
            train = split_of(frame["id"].to_numpy(), *where) == 0
            moments.add(frame.loc[train, features].to_numpy(dtype=np.float64))
    if failures:
        table = format_failures(list(failures.values()))
        raise DataValidationError(
            f"The raw data of {data.name!r} (data.source={data.source!r}) breaks its schema "
            f"(data/schemas.py), so nothing was written:\n{table}"
        )
    offset, scale = moments.mean, moments.std()
    scale[scale == 0] = 1.0  # a constant feature stays constant instead of dividing by 0
    stats = {"features": features, "offset": offset.tolist(), "scale": scale.tolist()}

    # Pass 2: transform and write each split in row groups of data.row_group_rows rows.
    out_dir = Path(cfg.paths.processed_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".processed-", dir=out_dir.parent))
    target_type = pa.int64() if has_class_labels(data) else pa.float32()
    schema = pa.schema(
        [("id", pa.int64()), *((f, pa.float32()) for f in features), (data.target, target_type)]
    )
    rows = _chunk_rows(data)
    counts = dict.fromkeys(SPLITS, 0)
    try:
        writers = {name: pq.ParquetWriter(staging / f"{name}.parquet", schema) for name in SPLITS}
        pending: dict[str, list[pa.Table]] = {name: [] for name in SPLITS}
        for frame in _parquet_chunks(path, rows):
            which = split_of(frame["id"].to_numpy(), *where)
            for index, name in enumerate(SPLITS):
                part = frame[which == index]
                scaled = (part[features].to_numpy(dtype=np.float64) - offset) / scale
                arrays = [pa.array(part["id"].to_numpy(dtype=np.int64))]
                arrays += [pa.array(scaled[:, j].astype(np.float32)) for j in range(len(features))]
                target = part[data.target].to_numpy().astype(target_type.to_pandas_dtype())
                arrays.append(pa.array(target, type=target_type))
                pending[name].append(pa.Table.from_arrays(arrays, schema=schema))
                counts[name] += len(part)
                _flush(writers[name], pending[name], rows, final=False)
        for name in SPLITS:
            _flush(writers[name], pending[name], rows, final=True)
            writers[name].close()
        (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        previous = out_dir.with_name(f".{out_dir.name}-previous")
        shutil.rmtree(previous, ignore_errors=True)
        if out_dir.exists():
            out_dir.replace(previous)
        staging.replace(out_dir)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: range(count) for name, count in counts.items()}


def _flush(writer: pq.ParquetWriter, pending: list[pa.Table], rows: int, final: bool) -> None:
    """Write the pending rows in whole row groups of ``rows`` (the rest too when ``final``)."""
    held = sum(t.num_rows for t in pending)
    if held < rows and not (final and held):
        return
    table = pa.concat_tables(pending)
    whole = held if final else held // rows * rows
    writer.write_table(table.slice(0, whole), row_group_size=rows)
    pending[:] = [table.slice(whole)] if whole < held else []


# ---- validate -----------------------------------------------------------------------------------


def inspect(
    cfg: DictConfig, stats_failures: Callable[[bytes, list[str]], list[Failure]]
) -> tuple[list[Failure], list[Failure], dict[str, str]]:
    """``validate.inspect`` for splits that stream: ``(failures, warnings, md5 of each file)``.
    ``stats_failures``: validate's check of ``stats.json``."""
    from .checks import row_hashes
    from .streaming import group_failures
    from .version import PROCESSED_FILES, file_md5

    data = cfg.data
    _, processed_schema, features = schemas_for(data.name)
    processed_dir = Path(cfg.paths.processed_dir)
    result = SimpleNamespace(failures=[], warnings=[], files={})
    for name in PROCESSED_FILES:
        if (processed_dir / name).is_file():
            result.files[name] = file_md5(processed_dir / name)
    columns = ["id", *features, data.target]
    keys, samples = {}, {}
    for split in SPLITS:
        path = processed_dir / f"{split}.parquet"
        if not path.is_file():
            result.failures.append(Failure(path.name, "<file>", "exists", [str(path)]))
            continue
        try:
            parquet = pq.ParquetFile(path)
            result.failures += group_failures(path, processed_schema, columns, split)
        except Exception as error:  # empty, truncated, not Parquet
            result.failures.append(
                Failure(path.name, "<file>", "readable parquet", [str(error)[:120]])
            )
            continue
        ids, hashes, sample = [], [], []
        rng = np.random.default_rng([int(cfg.seed) % 2**32, SPLITS.index(split)])
        share = min(1.0, DRIFT_SAMPLE / max(parquet.metadata.num_rows, 1))
        present = [c for c in [*features, data.target] if c in parquet.schema_arrow.names]
        for group in range(parquet.metadata.num_row_groups):
            frame = parquet.read_row_group(group).to_pandas()
            if "id" in frame.columns:
                ids.append(frame["id"].to_numpy())
            if set(features) <= set(frame.columns):
                hashes.append(row_hashes(frame, features).to_numpy())
            sample.append(frame.loc[rng.random(len(frame)) < share, present])
        keys[split] = pd.DataFrame(
            {
                "id": np.concatenate(ids) if ids else np.array([], dtype=np.int64),
                "content": np.concatenate(hashes) if hashes else np.array([], dtype=np.uint64),
            }
        )
        samples[split] = pd.concat(sample, ignore_index=True)
    if "stats.json" in result.files:
        result.failures += stats_failures((processed_dir / "stats.json").read_bytes(), features)
    else:
        result.failures.append(
            Failure("stats.json", "<file>", "exists", [str(processed_dir / "stats.json")])
        )
    if len(keys) < len(SPLITS):
        return result.failures, result.warnings, result.files
    for split, frame in keys.items():  # unique ids over the whole split, not per row group
        repeated = frame["id"].duplicated().to_numpy()
        if repeated.any():
            values = frame["id"].to_numpy()[repeated]
            rows = [int(r) for r in np.flatnonzero(repeated)[:5]]
            failure = Failure(split, "id", "field_uniqueness", values[:5].tolist(), rows)
            failure.count = int(repeated.sum())
            result.failures.append(failure)
    result.failures += overlapping_ids(keys)
    max_share = float(data.get("max_duplicate_share", 0.01))
    duplicated, result.warnings = duplicated_content(keys, ["content"], max_share)
    result.failures += duplicated
    if not result.failures:
        drift = as_dict(data.drift, resolve=False)
        for name in ("val", "test"):
            result.failures += drift_failures(
                samples["train"],
                samples[name],
                name,
                features,
                data.target,
                has_class_labels(data),
                drift,
            )
    return result.failures, result.warnings, result.files
