"""Train-time augmentation: ``data.augment`` (configs/data/) built into one module.

``data.augment`` is a list of ``_target_`` nodes, applied in order to a batch of images
``(n, C, H, W)`` in [0, 1] (after ``Preprocess``): kornia's augmentations by default, or any
callable that takes and returns such a batch (``torchvision.transforms.v2.RandomCrop``, a
function of your own). It runs where ``data.augment_on`` says:

- ``workers``: in the dataset (``ImageFiles``), in the DataLoader's worker processes, right
  after decoding: the CPU work overlaps the model's step.
- ``device``: in the training loop, on the batch once it is on the training device (a GPU
  augments a large batch faster than a few CPU workers).

Either way a batch's random draws are seeded by where the batch is (the seed, the epoch, the
batch's position), in a forked generator: the process's own random state, which checkpoints
hold, is not touched, so a resumed run augments every batch as the uninterrupted run did.
Only training batches are augmented: never validation, test, ``evaluate``, ``predict`` or
``export`` inputs (nothing but the training split is given the module).
"""

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from ..errors import ConfigError
from .images import batch_seed


class _Call(nn.Module):
    """A callable that is not a module (a function, a transform of another library), as one."""

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.function = function

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.function(images)

    def extra_repr(self) -> str:
        return repr(self.function)


def augmentation_for(data: DictConfig) -> nn.Module | None:
    """``data.augment`` as one module applied in order; None when the list is empty or absent.

    A config error (exit 2) when an entry cannot be built, and for tabular data: augmenting
    rows of a table has no meaning this project could guess.
    """
    nodes = data.get("augment") or []
    if not nodes:
        return None
    if not data.get("image_shape"):
        raise ConfigError(
            f"data.augment is for images; the {data.name} data is a table (no data.image_shape): "
            "remove data.augment from configs/data/ (or set it to [])."
        )
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    steps = []
    for position, node in enumerate(nodes):
        where = f"data.augment[{position}] ({node.get('_target_')})"
        try:
            step = instantiate(node, _convert_="all")
        except InstantiationException as error:
            raise ConfigError(f"configs/data/: {where} cannot be instantiated: {error}") from None
        if not callable(step):
            raise ConfigError(
                f"configs/data/: {where} is a {type(step).__name__}, not a module or a callable "
                "taking and returning a batch of images (n, C, H, W)."
            )
        steps.append(step if isinstance(step, nn.Module) else _Call(step))
    return nn.Sequential(*steps)


def _wanted(cfg: DictConfig, place: str) -> bool:
    """Whether the run augments at ``place`` (``data.augment_on``: workers, the default, or
    device). Never when overfitting (``trainer.overfit_batches``): it learns a few batches by
    heart and validates on the same rows, which must be what it learned."""
    overfit = bool(cfg.get("trainer", {}).get("overfit_batches"))
    return not overfit and str(cfg.data.get("augment_on") or "workers") == place


class DeviceAugmentation:
    """``data.augment_on: device``: the loop's training batches, augmented on the device.

    Batch ``index`` of an epoch is seeded by (seed, epoch, index and rank): the same on a
    resumed run, and different on each rank of a distributed run.
    """

    def __init__(
        self, module: nn.Module | None, seed: int, device: torch.device, rank: int, world_size: int
    ) -> None:
        self.module = None if module is None else module.to(device)
        self.seed, self.rank, self.world_size = int(seed), rank, world_size
        self.devices = [device] if device.type == "cuda" else []

    def __call__(self, inputs: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        if self.module is None:
            return inputs
        with torch.random.fork_rng(devices=self.devices):
            torch.manual_seed(batch_seed(self.seed, epoch, index * self.world_size + self.rank))
            return self.module(inputs)


def on_device(
    cfg: DictConfig, rank: int, world_size: int, device: torch.device
) -> DeviceAugmentation:
    """The loop's augmentation: ``data.augment`` when ``data.augment_on`` is ``device``, else a
    pass-through (the workers augment, or nothing does)."""
    module = augmentation_for(cfg.data) if _wanted(cfg, "device") else None
    return DeviceAugmentation(module, cfg.seed, device, rank, world_size)


def in_workers(cfg: DictConfig) -> nn.Module | None:
    """The module the training split's dataset applies (``data.augment_on: workers``)."""
    return augmentation_for(cfg.data) if _wanted(cfg, "workers") else None
