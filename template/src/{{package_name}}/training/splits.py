"""The splits of a run as the loop reads them: the plan, the samplers and the loaders.

The training split is read first, since the plan (``plan.py``) needs its size; overfitting
validates on the training split itself. Every rank reads its own slice of each global training
batch and its own shard of the validation and test splits (``sampling.py``). A table larger
than ``data.stream`` allows is read as a stream of row groups instead (``data/streaming.py``):
its samplers keep the same protocol (``set_epoch(epoch, skip)``, ``len``), so the loop and exact
resume do not change.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from .. import settings
from ..data.augmentation import in_workers
from ..data.checks import read_stats
from ..data.datasets import load_split
from ..data.schemas import is_images
from ..data.streaming import (
    SHUFFLE_BUFFER_GROUPS,
    ParquetStream,
    ShardSampler,
    StreamSampler,
    batches_per_rank,
)
from ..tasks import Task
from . import distributed, loading
from .plan import Plan, plan
from .sampling import EpochBatchSampler, LengthBucketSampler, ShardBatchSampler


@dataclass
class Splits:
    """What the loop reads, and the plan made from the training split's size."""

    plan: Plan
    train_set: loading.Split
    val_set: loading.Split
    train_sampler: EpochBatchSampler
    train: Any  # the training batches (loading.batches)
    val: Any  # this rank's shard of the validation split
    # prepare's feature scaling travels with the weights: predict applies the scaling the model
    # was trained with, even after the data has been prepared again. None for images: the
    # checkpoint's config (data.pixel_range, image_shape, resize) rebuilds images.Preprocess.
    feature_scale: dict[str, Any] | None

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The coming epoch's order (from batch ``skip`` on) and, for a dataset that augments
        (``ImageFiles``), its seeds: before the loader's iterator is made, which copies the
        dataset into the workers."""
        self.train_sampler.set_epoch(epoch, skip=skip)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)


def splits(cfg: DictConfig, task: Task, ctx: distributed.Context) -> Splits:
    """Read the training and validation splits of ``cfg.data``; plan the run."""
    processed, workers = cfg.paths.processed_dir, int(cfg.data.num_workers)
    train_set = load_split(
        cfg.data, processed, "train", task.targets, in_workers(cfg), seed=cfg.seed, lazy=True
    )
    run = plan(cfg.trainer, cfg.data.batch_size, _rows(train_set, cfg, ctx), ctx.world_size)
    val_set = (
        train_set
        if run.val_on_train
        else load_split(cfg.data, processed, "val", task.targets, lazy=True)
    )
    sampler = _sampler_class(train_set, cfg)(
        _sampler_sizes(train_set, cfg),
        run.batch_size,
        seed=cfg.seed,
        shuffle=run.shuffle,
        rank=ctx.rank,
        world_size=ctx.world_size,
        max_batches=run.train_batches,
        **_buffer(train_set, cfg),
    )
    stats = Path(processed) / "stats.json"
    return Splits(
        plan=run,
        train_set=train_set,
        val_set=val_set,
        train_sampler=sampler,
        train=loading.batches(train_set, sampler, workers, ctx.device, cfg.seed),
        val=shards(val_set, cfg, run, ctx, run.val_rows),
        # unreadable: exit 5
        feature_scale=read_stats(stats) if stats.is_file() and not is_images(cfg.data) else None,
    )


def load_shards(
    cfg: DictConfig, task: Task, run: Plan, ctx: distributed.Context, split: str = "test"
) -> Any:
    """This rank's shard of ``split`` (the test split)."""
    dataset = load_split(cfg.data, cfg.paths.processed_dir, split, task.targets, lazy=True)
    return shards(dataset, cfg, run, ctx)


def shards(
    dataset: loading.Split,
    cfg: DictConfig,
    run: Plan,
    ctx: distributed.Context,
    rows: int | None = None,
) -> Any:
    """This rank's shard of ``dataset`` (of its first ``rows``), ``run.val_batches`` batches."""
    if isinstance(dataset, ParquetStream):
        sampler: Any = ShardSampler(
            dataset.sizes,
            run.batch_size,
            rank=ctx.rank,
            world_size=ctx.world_size,
            max_batches=run.val_batches,
            rows=rows,
        )
        return loading.batches(dataset, sampler, int(cfg.data.num_workers), ctx.device, cfg.seed)
    sampler = ShardBatchSampler(
        len(dataset) if rows is None else rows,
        run.batch_size,
        rank=ctx.rank,
        world_size=ctx.world_size,
        max_batches=run.val_batches,
    )
    return loading.batches(dataset, sampler, int(cfg.data.num_workers), ctx.device, cfg.seed)


def fit_task(task: Task, dataset: Any) -> None:
    """``task.fit`` on the training targets. A stream's target column is read from disk only
    for a task that learns from it (regression's scale), not for the default, empty ``fit``."""
    if isinstance(dataset, ParquetStream):
        if type(task).fit is not Task.fit:
            task.fit(dataset.targets)
        return
    task.fit(loading.targets_of(dataset))
    task.fit_inputs(dataset)


def _rows(dataset: Any, cfg: DictConfig, ctx: distributed.Context) -> int:
    """The training rows the plan counts: a stream's are those every rank can fill batches
    with in any epoch (each rank reads its own row groups)."""
    if not isinstance(dataset, ParquetStream):
        return len(dataset)
    size = settings.positive_int(cfg.data.batch_size, "data.batch_size")
    per_rank = batches_per_rank(dataset.sizes, size, ctx.world_size)
    return per_rank * size * ctx.world_size


def _buckets(dataset: Any, cfg: DictConfig) -> bool:
    """Batch by length: texts with ``data.bucket_by_length`` (a dataset that has ``lengths``)."""
    return bool(cfg.data.get("bucket_by_length", False)) and hasattr(dataset, "lengths")


def _sampler_class(dataset: Any, cfg: DictConfig) -> type:
    if isinstance(dataset, ParquetStream):
        return StreamSampler
    return LengthBucketSampler if _buckets(dataset, cfg) else EpochBatchSampler


def _sampler_sizes(dataset: Any, cfg: DictConfig) -> Any:
    """What the sampler is built from: a stream's row-group sizes, the texts' lengths when
    bucketing, else the number of rows."""
    if isinstance(dataset, ParquetStream):
        return dataset.sizes
    return dataset.lengths if _buckets(dataset, cfg) else len(dataset)


def _buffer(dataset: Any, cfg: DictConfig) -> dict[str, int]:
    if not isinstance(dataset, ParquetStream):
        return {}
    groups = cfg.data.get("shuffle_buffer_groups", SHUFFLE_BUFFER_GROUPS)
    return {"buffer_groups": settings.positive_int(groups, "data.shuffle_buffer_groups")}
