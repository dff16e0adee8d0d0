"""Which rows each rank reads, batch by batch: resumable, and the same for any world size.

Each epoch's order is a function of (seed, epoch) only, so a resumed run sees the same order, and
resuming mid-epoch skips the consumed batches by index: no data is loaded to skip them. Every
global batch of ``batch_size * world_size`` rows is cut into contiguous per-rank slices, so N
ranks with batch B see exactly the rows one process sees with batch B and N accumulation steps.

Texts (``data.bucket_by_length``, ``LengthBucketSampler``) are batched with texts of similar
length, so that a batch padded to its longest text is mostly text, not padding: the order is
still drawn from (seed, epoch) only, and is the same for any world size.
"""

from collections.abc import Iterator
from typing import Any

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

    def order(self) -> torch.Tensor:
        """Every row of the split in this epoch's order; the batches are its consecutive runs."""
        if not self.shuffle:
            return torch.arange(self.size)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.size, generator=generator)

    def index_batches(self, device: torch.device | None = None) -> Iterator[torch.Tensor]:
        """The same batches as tensors of row indices on ``device`` (for in-memory tensors).

        The epoch's order is drawn on the CPU (the same on any device) and copied once: one
        copy per epoch instead of one per batch, each of which would wait for the GPU.
        """
        order = self.order()
        order = order.to(device) if device is not None else order
        global_batch = self.batch_size * self.world_size
        for index in range(self.skip, self.num_batches):
            start = index * global_batch + self.rank * self.batch_size
            yield order[start : start + self.batch_size]


class LengthBucketSampler(EpochBatchSampler):
    """``EpochBatchSampler`` whose batches hold rows of similar ``lengths`` (tokens per text).

    Each epoch: the rows in a random order, cut into pools of ``POOL_BATCHES`` batches; each
    pool sorted by length (a stable sort: rows of equal length keep their random order) and cut
    into batches of ``batch_size``; then the batches themselves shuffled, so that an epoch does
    not go from short texts to long ones. Everything is drawn from (seed, epoch), and the order
    depends on the per-rank ``batch_size`` but not on the world size: N ranks see the batches
    one process sees with N accumulation steps, and a resumed epoch skips batches by index.
    The rows left over (fewer than a batch) come last, where the plan drops them.
    """

    #: Rows sorted together: larger pools pad less, smaller ones mix lengths more between epochs.
    POOL_BATCHES = 16

    def __init__(self, lengths: Any, batch_size: int, **kwargs: Any) -> None:
        self.lengths = torch.as_tensor(lengths, dtype=torch.long)
        super().__init__(len(self.lengths), batch_size, **kwargs)

    def order(self) -> torch.Tensor:
        if not self.shuffle:  # a fixed order (overfit_batches): the split's own
            return super().order()
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        rows = torch.randperm(self.size, generator=generator)
        pool = self.batch_size * self.POOL_BATCHES
        sorted_rows = torch.cat(
            [
                chunk[torch.sort(self.lengths[chunk], stable=True).indices]
                for chunk in rows.split(pool)
            ]
        )
        whole = self.size // self.batch_size * self.batch_size
        batches = sorted_rows[:whole].view(-1, self.batch_size)
        shuffled = batches[torch.randperm(len(batches), generator=generator)]
        return torch.cat([shuffled.flatten(), sorted_rows[whole:]])


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
