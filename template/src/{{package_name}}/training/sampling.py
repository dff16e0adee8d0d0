"""Which rows each rank reads, batch by batch: resumable, and the same for any world size.

Each epoch's order is a function of (seed, epoch) only, so a resumed run sees the same order, and
resuming mid-epoch skips the consumed batches by index: no data is loaded to skip them. Every
global batch of ``batch_size * world_size`` rows is cut into contiguous per-rank slices, so N
ranks with batch B see exactly the rows one process sees with batch B and N accumulation steps.
"""

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """This rank's training batches of one epoch (like DistributedSampler + set_epoch)."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
    ) -> None:
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        # Incomplete global batches are dropped: every rank takes the same number of steps.
        full = size // (batch_size * world_size)
        self.num_batches = full if max_batches is None else min(full, max_batches)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The next iteration yields epoch ``epoch``'s batches, from batch ``skip`` on."""
        self.epoch = epoch
        self.skip = skip

    def __len__(self) -> int:
        return max(self.num_batches - self.skip, 0)

    def __iter__(self) -> Iterator[list[int]]:
        return (rows.tolist() for rows in self.index_batches())

    def index_batches(self, device: torch.device | None = None) -> Iterator[torch.Tensor]:
        """The same batches as tensors of row indices on ``device`` (for in-memory tensors).

        The epoch's order is drawn on the CPU (the same on any device) and copied once: one
        copy per epoch instead of one per batch, each of which would wait for the GPU.
        """
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        order = order.to(device) if device is not None else order
        global_batch = self.batch_size * self.world_size
        for index in range(self.skip, self.num_batches):
            start = index * global_batch + self.rank * self.batch_size
            yield order[start : start + self.batch_size]


class ShardBatchSampler(Sampler[list[int]]):
    """This rank's evaluation batches: rows rank, rank + N, ... in order, none repeated.

    Unlike DistributedSampler, nothing is padded, so the metrics reduced over the ranks are the
    metrics of the whole split.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
    ) -> None:
        rows = list(range(rank, size, world_size))
        self.batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        if max_batches is not None:
            self.batches = self.batches[:max_batches]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def index_batches(self, device: torch.device | None = None) -> Iterator[torch.Tensor]:
        """The same batches as tensors of row indices on ``device`` (for in-memory tensors)."""
        return (torch.as_tensor(rows, device=device) for rows in self.batches)
