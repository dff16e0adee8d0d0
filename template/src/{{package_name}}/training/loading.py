"""Batches for the loop: cut straight from in-memory tensors, or read by a DataLoader's workers.

The datasets are tensors already in memory (``data/datasets.py``). With ``data.num_workers: 0``
each batch is one indexing of those tensors, on the training device (they are copied there once):
no per-batch collation, iterator or worker machinery, which would cost more than a small model's
step. With workers, a DataLoader reads the same batches (same sampler, same order) in worker
processes; use it when building a batch is real work (decoding images, augmentation). A table
streamed from disk (``data/streaming.py``) is read buffer by buffer, in one worker ahead of the
step when ``data.num_workers`` is at least 1: a stream has one order, so one reader.
"""

import multiprocessing.util
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..data.datasets import Split
from ..data.streaming import ParquetStream, StreamBatches
from . import distributed


class TensorBatches:
    """The batches ``sampler`` names, indexed from tensors that live on ``device``."""

    def __init__(self, dataset: TensorDataset, sampler: Any, device: torch.device) -> None:
        self.tensors = tuple(tensor.to(device) for tensor in dataset.tensors)
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for rows in self.sampler.index_batches(self.tensors[0].device):
            yield tuple(tensor[rows] for tensor in self.tensors)


class _Rows(Dataset):
    """A TensorDataset read a batch at a time (one indexing per tensor, no per-row collation)."""

    def __init__(self, dataset: TensorDataset) -> None:
        self.tensors = dataset.tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(tensor[index] for tensor in self.tensors)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        rows = torch.as_tensor(indices)
        return tuple(tensor[rows] for tensor in self.tensors)


def _whole_batch(batch: Any) -> Any:
    return batch


# A Unix socket's path holds at most 107 bytes. Workers hand each batch's tensors over as file
# descriptors, through a socket that multiprocessing makes in its own temporary folder:
# <TMPDIR>/pymp-XXXXXXXX/listener-XXXXXXXX, 32 bytes more than TMPDIR. Under a longer TMPDIR
# (a CI runner's, a SLURM job's) every batch failed with "AF_UNIX path too long".
_SOCKET_PATH_MAX = 107
_SOCKET_SUFFIX = len("/pymp-XXXXXXXX/listener-XXXXXXXX")


def use_a_short_folder_for_sockets() -> None:
    """Give multiprocessing a temporary folder short enough for its sockets, if TMPDIR is not.

    Newer Pythons (3.13 and later, cpython#132124) fall back on the system's /tmp themselves. Forked
    workers inherit the folder; multiprocessing removes it when the process exits.
    """
    if len(os.fsencode(tempfile.gettempdir())) + _SOCKET_SUFFIX <= _SOCKET_PATH_MAX:
        return
    for candidate in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            saved, tempfile.tempdir = tempfile.tempdir, candidate
            try:
                multiprocessing.util.get_temp_dir()  # made once, then kept for the process
            finally:
                tempfile.tempdir = saved
            return


def batches(
    dataset: Split, sampler: Any, num_workers: int, device: torch.device, seed: int
) -> TensorBatches | StreamBatches | DataLoader:
    """In-memory batches of tensors without workers; a stream's own batches (``ParquetStream``);
    otherwise, and always for a dataset that reads files (``ImageFiles``: decoding is the
    loader's work, in the main process with ``num_workers: 0``), a DataLoader over the same
    sampler."""
    if isinstance(dataset, ParquetStream):
        return _stream(dataset, sampler, num_workers, device, seed)
    if isinstance(dataset, TensorDataset) and num_workers == 0:
        return TensorBatches(dataset, sampler, device)
    if num_workers:
        use_a_short_folder_for_sockets()
    # Each loader has its own generator (it seeds the workers): creating an iterator would
    # otherwise draw from the global one and shift every later random number of a resumed run.
    return DataLoader(
        _Rows(dataset) if isinstance(dataset, TensorDataset) else dataset,
        batch_sampler=sampler,
        collate_fn=_whole_batch,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=distributed.ignore_stop_signals if num_workers else None,
        generator=torch.Generator().manual_seed(seed),
    )


def _stream(
    dataset: ParquetStream, sampler: Any, num_workers: int, device: torch.device, seed: int
) -> StreamBatches | DataLoader:
    batches = StreamBatches(dataset, sampler)
    if num_workers == 0:
        return batches
    use_a_short_folder_for_sockets()
    return DataLoader(
        batches,
        batch_size=None,  # the stream yields whole batches
        num_workers=1,
        pin_memory=device.type == "cuda",
        worker_init_fn=distributed.ignore_stop_signals,
        generator=torch.Generator().manual_seed(seed),
    )


def targets_of(dataset: Split) -> torch.Tensor:
    """Every target of a split (``task.fit`` needs them): no file is read for them."""
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return targets
    assert isinstance(dataset, TensorDataset)  # the other splits keep their targets
    return dataset.tensors[1]


def first_rows(dataset: Split, health: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first ``health.sample_predictions`` rows of a split (the sample grid's images):
    only those files are read."""
    count = min(int((health or {}).get("sample_predictions") or 0), len(dataset))
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0][:count], dataset.tensors[1][:count]
    getitems = getattr(dataset, "__getitems__", None)
    if getitems is None or count == 0:
        return None
    return getitems(list(range(count)))


def start_epoch(dataset: Dataset, epoch: int) -> None:
    """Tell a dataset that seeds its batches by epoch (``ImageFiles``) which epoch comes; before
    the loader's iterator is made, since non-persistent workers take a copy of the dataset."""
    set_epoch = getattr(dataset, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)


def reseed(loader: TensorBatches | StreamBatches | DataLoader, seed: int) -> None:
    """Seed the workers of the coming epoch (a resumed epoch gets the same worker seeds)."""
    if isinstance(loader, DataLoader) and loader.generator is not None:
        loader.generator.manual_seed(seed)
