"""Tables larger than memory: a processed split read lazily, a few Parquet row groups at a time.

A split streams when ``data.stream`` says so (``auto``: when its uncompressed size, from the
Parquet metadata, exceeds ``data.stream_above_mb``); smaller ones stay in-memory tensors
(``datasets.py``), the fast path. Nothing here reads a whole split: only the metadata (the row
groups' sizes) and, at any time, the row groups of one shuffle buffer.

Each epoch's order is a pure function of (seed, epoch) and the row groups' sizes, so it is known
before a single row is read:

1. the row groups are permuted with ``seed + epoch`` (shard shuffle);
2. rank r of N takes every N-th group of that permutation (its own share: nothing is read twice);
3. its groups are cut into buffers of ``data.shuffle_buffer_groups`` consecutive groups, and the
   rows of each buffer are shuffled with (seed, epoch, rank, buffer) (the buffer shuffle);
4. the resulting stream of rows is cut into batches of ``data.batch_size``; every rank takes the
   same number, what no rank can fill is dropped (like the in-memory path's incomplete batches).

Resuming at batch k (``set_epoch(epoch, skip=k)``, the position the checkpoint already stores as
``batch_in_epoch``) reads from the buffer that holds row k * batch_size on: the batches before it
are skipped by arithmetic, not by reading them.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from omegaconf import DictConfig
from torch.utils.data import IterableDataset

from ..errors import ConfigError

#: The defaults of the data config's stream keys (configs/data/*.yaml repeat them).
STREAM = "auto"
STREAM_ABOVE_MB = 1024
SHUFFLE_BUFFER_GROUPS = 4
ROW_GROUP_ROWS = 65536


def row_group_sizes(path: str | Path) -> list[int]:
    """The number of rows of each row group of a Parquet file (from its footer only)."""
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def uncompressed_mb(path: str | Path) -> float:
    """The size of a Parquet file's data once decoded, in MiB, from its footer."""
    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) / 2**20


def first_rows(path: str | Path) -> Any:
    """The first row group of a Parquet file, as a DataFrame: a snapshot of a large split."""
    return pq.ParquetFile(path).read_row_group(0).to_pandas()


def stream_setting(data: DictConfig) -> str | bool:
    """``data.stream``: ``auto``, true or false (a config error otherwise)."""
    value = data.get("stream", STREAM)
    if value not in ("auto", True, False):
        raise ConfigError(f"data.stream must be auto, true or false, got {value!r}.")
    return value


def streams(data: DictConfig, path: str | Path) -> bool:
    """Whether the table at ``path`` is read lazily rather than into memory."""
    if data.get("image_shape") or data.get("tokenizer"):
        return False  # image data has its own lazy dataset (files); texts are token ids in memory
    value = stream_setting(data)
    if isinstance(value, bool):  # else "auto"
        return value
    return uncompressed_mb(path) > float(data.get("stream_above_mb", STREAM_ABOVE_MB))


def stream_split(
    data: DictConfig,
    processed_dir: str | Path,
    path: Path,
    schema: Any,
    features: list[str],
    targets: Callable[[np.ndarray], torch.Tensor],
) -> "ParquetStream":
    """A processed split as a stream, checked against its schema as ``load_split`` checks an
    in-memory one: skipped where ``validate``'s passing record holds these bytes, else row group
    by row group (one pass; the failures in the same table)."""
    from .checks import DataValidationError, format_failures, unreadable_parquet
    from .record import vouches_for
    from .version import file_md5, schema_digest

    columns = ["id", *features, data.target]
    try:
        stream = ParquetStream(path, features, data.target, targets)
        md5 = file_md5(path)
    except Exception as error:  # empty, truncated, not Parquet, unreadable
        raise unreadable_parquet(path, error) from None
    if not vouches_for(processed_dir, path.name, md5, schema_digest(schema, columns)):
        failures = group_failures(path, schema, columns, path.stem)
        if failures:
            raise DataValidationError(
                f"{path} breaks its schema; refusing to use it:\n{format_failures(failures)}"
            )
    return stream


def group_failures(path: Path, schema: Any, columns: list[str], table: str) -> list:
    """The schema's failures, checked one row group at a time (row numbers: the file's). A
    failure found in several groups is one row, with the counts added and the first examples."""
    from .checks import schema_failures

    parquet = pq.ParquetFile(path)
    merged: dict[tuple[str, str, str], Any] = {}
    offset = 0
    for group in range(parquet.metadata.num_row_groups):
        frame = parquet.read_row_group(group).to_pandas()
        frame.index = range(offset, offset + len(frame))
        offset += len(frame)
        for failure in schema_failures(schema, frame, table, columns):
            merge_failure(merged, failure)
    if offset == 0:  # no rows at all: the schema's own check says so
        frame = parquet.schema_arrow.empty_table().to_pandas()
        return schema_failures(schema, frame, table, columns)
    return list(merged.values())


def merge_failure(failures: dict[tuple[str, str, str], Any], failure: Any) -> None:
    """One row per (table, column, check): counts added, the first five examples kept."""
    key = (failure.table, failure.column, failure.check)
    if key not in failures:
        failures[key] = failure
        return
    kept = failures[key]
    kept.count += failure.count
    kept.failing_values = (kept.failing_values + failure.failing_values)[:5]
    kept.rows = (kept.rows + failure.rows)[:5]


class ParquetStream:
    """A processed split on disk: its row groups' sizes, and a reader of some of them.

    ``read(groups)`` returns the ``(features, targets)`` tensors of those row groups, in order:
    float32 features and the task's targets (``task.targets``), as ``TensorDataset`` holds them.
    """

    def __init__(
        self,
        path: str | Path,
        features: list[str],
        target: str,
        targets: Callable[[np.ndarray], torch.Tensor],
    ) -> None:
        self.path = Path(path)
        self.features, self.target, self.to_targets = list(features), target, targets
        self.sizes = row_group_sizes(self.path)
        self._file: pq.ParquetFile | None = None

    def __len__(self) -> int:
        return sum(self.sizes)

    def __getstate__(self) -> dict[str, Any]:  # a worker opens the file itself
        return {**self.__dict__, "_file": None}

    def read(self, groups: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if self._file is None:
            self._file = pq.ParquetFile(self.path)
        table = self._file.read_row_groups(groups, columns=[*self.features, self.target])
        # Column by column into one row-major float32 array: no pandas frame in between.
        inputs = np.empty((table.num_rows, len(self.features)), dtype=np.float32)
        for j, name in enumerate(self.features):
            inputs[:, j] = table.column(name).to_numpy()
        target = table.column(self.target).to_numpy().copy()  # arrow's own memory is read-only
        return torch.from_numpy(inputs), self.to_targets(target)

    @property
    def targets(self) -> torch.Tensor:
        """The whole target column (one column, read only when asked: regression's scale)."""
        column = pq.read_table(self.path, columns=[self.target]).column(self.target)
        return self.to_targets(column.to_numpy().copy())


def epoch_buffers(
    sizes: list[int],
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    rank: int,
    world_size: int,
    buffer_groups: int,
) -> list[tuple[int, list[int], np.ndarray | None]]:
    """Rank ``rank``'s buffers of epoch ``epoch``: ``(first position, groups, row order)``.

    Computed from the row groups' sizes alone, so a resumed run knows where batch k is.
    """
    groups = np.arange(len(sizes))
    if shuffle:
        groups = np.random.default_rng([seed % 2**32, epoch]).permutation(len(sizes))
    mine = [int(g) for g in groups[rank::world_size]]
    buffers, start = [], 0
    for index in range(0, len(mine), buffer_groups):
        chosen = mine[index : index + buffer_groups]
        rows = sum(sizes[g] for g in chosen)
        order = None
        if shuffle:
            key = [seed % 2**32, epoch, rank, index // buffer_groups]
            order = np.random.default_rng(key).permutation(rows)
        buffers.append((start, chosen, order))
        start += rows
    return buffers


def batches_per_rank(sizes: list[int], batch_size: int, world_size: int) -> int:
    """Whole batches every rank can fill in any epoch: the rank with the fewest row groups
    (``len(sizes) // world_size``) could draw the smallest ones."""
    fewest = sorted(sizes)[: len(sizes) // world_size]
    return sum(fewest) // batch_size


class StreamSampler:
    """This rank's training batches of one epoch of a stream (``EpochBatchSampler``'s protocol:
    ``set_epoch(epoch, skip)``, ``len``)."""

    def __init__(
        self,
        sizes: list[int],
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
        buffer_groups: int = SHUFFLE_BUFFER_GROUPS,
    ) -> None:
        self.sizes, self.batch_size, self.seed, self.shuffle = sizes, batch_size, seed, shuffle
        self.rank, self.world_size, self.buffer_groups = rank, world_size, buffer_groups
        full = batches_per_rank(sizes, batch_size, world_size)
        self.num_batches = full if max_batches is None else min(full, max_batches)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The next iteration yields epoch ``epoch``'s batches, from batch ``skip`` on."""
        self.epoch = epoch
        self.skip = skip

    def __len__(self) -> int:
        return max(self.num_batches - self.skip, 0)

    def buffers(self) -> list[tuple[int, list[int], np.ndarray | None]]:
        return epoch_buffers(
            self.sizes,
            seed=self.seed,
            epoch=self.epoch,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
            buffer_groups=self.buffer_groups,
        )

    def plan(self) -> tuple[int, int]:
        """``(first, end)`` positions of this rank's stream the coming iteration yields."""
        return self.skip * self.batch_size, self.num_batches * self.batch_size


class ShardSampler:
    """This rank's evaluation batches of a stream: its row groups (rank, rank + N, ...) in
    order, rows in order, nothing repeated or padded (``ShardBatchSampler``'s promise). With
    one rank these are exactly the in-memory path's batches."""

    def __init__(
        self,
        sizes: list[int],
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
        rows: int | None = None,
    ) -> None:
        self.sizes, self.batch_size = sizes, batch_size
        self.rank, self.world_size = rank, world_size
        self.rows_limit = rows  # the split's first rows only (overfitting validates on them)
        mine = self._mine()
        total = sum(end - start for _, start, end in mine)
        count = -(-total // batch_size)
        self.num_batches = count if max_batches is None else min(count, max_batches)

    def _mine(self) -> list[tuple[int, int, int]]:
        """``(group, first row, end row)`` within each of this rank's groups, limit applied."""
        offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        limit = offsets[-1] if self.rows_limit is None else self.rows_limit
        mine = []
        for group in range(self.rank, len(self.sizes), self.world_size):
            end = int(min(offsets[group + 1], limit) - offsets[group])
            if end > 0:
                mine.append((group, 0, end))
        return mine

    def set_epoch(self, epoch: int, skip: int = 0) -> None:  # evaluation has one order
        pass

    def __len__(self) -> int:
        return self.num_batches

    def buffers(self) -> list[tuple[int, list[int], np.ndarray | None]]:
        buffers, start = [], 0
        for group, first, end in self._mine():
            order = None if end == self.sizes[group] else np.arange(first, end)
            buffers.append((start, [group], order))
            start += end - first
        return buffers

    def plan(self) -> tuple[int, int]:
        return 0, self.num_batches * self.batch_size


class StreamBatches(IterableDataset):
    """The batches a stream sampler names, read buffer by buffer: the loop's ``data.train``.

    Rows before the sampler's first position are skipped without reading their row groups; a
    batch may span two buffers. Memory: one buffer of rows, plus a batch. An iterable dataset,
    so that a DataLoader worker can read the stream ahead of the step (``loading.py``).
    """

    def __init__(self, dataset: ParquetStream, sampler: Any) -> None:
        self.dataset, self.sampler = dataset, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        first, end = self.sampler.plan()
        size = self.sampler.batch_size
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # the rows of an unfinished batch
        for start, groups, order in self.sampler.buffers():
            rows = len(order) if order is not None else sum(self.dataset.sizes[g] for g in groups)
            if start + rows <= first:
                continue  # before the resume point: never read
            if start >= end:
                break
            inputs, targets = self.dataset.read(groups)
            if order is not None:
                index = torch.from_numpy(order)
                inputs, targets = inputs[index], targets[index]
            position, high = max(first, start), min(end, start + rows)
            while position < high:  # pieces cut at the batches' boundaries in the stream
                stop = min((position // size + 1) * size, high)
                pending.append(
                    (
                        inputs[position - start : stop - start],
                        targets[position - start : stop - start],
                    )
                )
                position = stop
                if stop % size == 0:
                    yield _joined(pending)
                    pending = []
        if pending:  # evaluation keeps its last, smaller batch
            yield _joined(pending)


def _joined(pieces: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(pieces) == 1:
        return pieces[0]
    return torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])
