"""Image files as the model reads them: decoded a batch at a time, never all held in memory.

A split of an image dataset is a manifest (``data/processed/<split>.parquet``: ``id``, ``path``,
``label``), its paths relative to the folder the images live in. ``ImageFiles`` decodes the
files a batch names, in the DataLoader's worker processes (``data.num_workers``), and turns them
into the model's input with ``Preprocess``: raw pixel values scaled from ``data.pixel_range`` to
[0, 1], resized to ``data.image_shape``. ``Preprocess`` is a module, so ``predict`` and
``export`` apply exactly what training applied (the checkpoint's config builds it again).

Training may augment each batch after preprocessing (``data.augment``, ``configs/data/``). The
random draws of a batch are seeded by ``(seed, epoch, the batch's first row)``, not by the
worker's random state: a resumed run augments every batch as the uninterrupted run did, whatever
the number of workers.
"""

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

# What Pillow calls the images a number of channels decodes to. Grey files of 16 bits ("I;16")
# keep their values (up to 65535: data.pixel_range says so); colour is 8 bits a channel.
_GREY_MODES = {"L", "I;16", "I;16B", "I;16L", "I", "1"}
_COLOUR_MODES = {"RGB", "YCbCr", "CMYK"}

#: File name endings read as images when a source is a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Beside the processed manifests: the images' root folder and the class names (``prepare``).
IMAGES_FILE = "images.json"


class ImageDecodeError(ValueError):
    """A file that is not an image this dataset can use; the message names the file and why."""


class ImageChannelsError(ImageDecodeError):
    """An image with another number of channels than the dataset's (``data.image_shape[0]``)."""


def channels_of(mode: str) -> int | None:
    """How many channels a Pillow image mode holds for this project (None: ambiguous, e.g.
    palette or alpha images, which must be converted by the user, not guessed at)."""
    if mode in _GREY_MODES:
        return 1
    if mode in _COLOUR_MODES:
        return 3
    return None


def decode(path: str | Path, channels: int, content: bytes | None = None) -> torch.Tensor:
    """The image file at ``path`` as a ``(channels, height, width)`` tensor of its raw values.

    8-bit files come as uint8, 16-bit grey files as int32 (torch has no uint16 arithmetic on
    every version). A file with another number of channels than ``channels`` is refused rather
    than converted: a colour photo in a grey dataset (or an alpha channel) is a data error that
    ``validate`` reports, not something to paper over. ``content``: the file's bytes, when the
    caller has read them already (``validate`` hashes what it decodes).
    """
    try:
        with Image.open(io.BytesIO(content) if content is not None else path) as opened:
            image: Image.Image = opened  # an ImageFile; convert() below gives a plain Image
            image.load()  # decodes now: a truncated file raises here, not in the model
            found = channels_of(image.mode)
            if found != channels:
                raise ImageChannelsError(
                    f"{path}: {image.mode} image ({found or 'unsupported'} channels), expected "
                    f"{channels} (data.image_shape[0]); convert it to "
                    f"{'grey (L)' if channels == 1 else 'RGB'}"
                )
            if image.mode in {"YCbCr", "CMYK"}:
                image = image.convert("RGB")
            elif image.mode == "1":
                image = image.convert("L")
            array = np.array(image)  # a copy: Pillow's buffer is read-only
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise ImageDecodeError(f"{path}: cannot be decoded as an image ({error})") from None
    if array.dtype == np.uint16 or array.dtype.kind == "i":
        array = array.astype(np.int32)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class Preprocess(nn.Module):
    """Raw pixels ``(n, C, H', W')`` in ``pixel_range`` units -> the model's input ``(n, C, H, W)``
    in [0, 1]: scaled, then resized to ``size`` (bilinear, antialiased) where ``resize`` allows.

    What every command applies: training and evaluation in the data workers, ``predict`` to
    files, ``export`` inside the exported program (a plain module: torch.export traces it).
    """

    def __init__(
        self, pixel_range: Sequence[float], size: Sequence[int], resize: bool = True
    ) -> None:
        super().__init__()
        low, high = (float(v) for v in pixel_range)
        self.low, self.span = low, high - low
        self.size = (int(size[0]), int(size[1]))
        self.resize = resize

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        images = (pixels.float() - self.low) / self.span
        if self.resize and tuple(images.shape[-2:]) != self.size:
            images = F.interpolate(
                images, size=self.size, mode="bilinear", antialias=True, align_corners=False
            )
        return images


def preprocess_for(data) -> Preprocess:
    """The ``Preprocess`` of a data config (``data.pixel_range``, ``data.image_shape``,
    ``data.resize``): the same for the trainer, the checkpoint's predict and export."""
    from .schemas import pixel_range

    return Preprocess(pixel_range(data), list(data.image_shape)[1:], bool(data.get("resize", True)))


def pixel_scaling(data) -> dict:
    """The pixels' scaling in the form a table's ``stats.json`` has (``raw = x * scale +
    offset``), so that evaluation reports changes to [0, 1] pixels in raw pixel values."""
    from .schemas import pixel_range

    low, high = pixel_range(data)
    count = int(np.prod(list(data.image_shape)))
    return {
        "features": [f"pixel_{i}" for i in range(count)],
        "offset": [low] * count,
        "scale": [high - low] * count,
    }


def read_images_record(processed_dir: str | Path) -> tuple[Path, list[str]]:
    """The images' root folder and the class names ``prepare`` recorded (``images.json``), or
    a ``DataValidationError`` naming the file and how to rebuild it."""
    from .checks import DataValidationError, rebuild_hint

    path = Path(processed_dir) / IMAGES_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        root, names = Path(record["root"]), [str(n) for n in record["class_names"]]
    except FileNotFoundError:
        raise DataValidationError(
            f"{path} does not exist: the image splits' root folder is recorded there; "
            f"{rebuild_hint()}."
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataValidationError(
            f"{path} cannot be read as the images' root and class names ({error}); "
            f"{rebuild_hint()}."
        ) from None
    return root, names


#: A split whose decoded files fit in this many bytes (per process: each worker has its own) is
#: kept decoded in memory after its first reading: the digits (1,257 training files, 80 KB) are
#: read from their files once. It is one block, allocated once: keeping each file as a tensor of
#: its own grew the heap far beyond the pixels it held (allocator fragmentation: 10x the images
#: made train peak 45% higher; docs/benchmarks.md). Only splits whose files all have the size of
#: ``data.image_shape`` (``resize: false``, which validate enforces) can share a block; larger
#: splits, or files of any size, are read from their files every epoch, so memory stays bounded
#: whatever the dataset's size. The files cannot change during a run: train checked them.
CACHE_BYTES = 64 * 2**20


class _DecodedBlock:
    """Decoded files of one shape in one preallocated tensor, filled as they are first read."""

    def __init__(self, rows: int, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        self.pixels = torch.empty((rows, *shape), dtype=dtype)
        self.filled = torch.zeros(rows, dtype=torch.bool)

    @classmethod
    def fits(cls, rows: int, shape: tuple[int, ...]) -> bool:
        # int32 (16-bit files) is the widest dtype decode gives: the bound holds for any.
        return rows * int(np.prod(shape)) * 4 <= CACHE_BYTES

    def get(self, index: int) -> torch.Tensor | None:
        return self.pixels[index] if self.filled[index] else None

    def put(self, index: int, pixels: torch.Tensor) -> None:
        if pixels.dtype == self.pixels.dtype and pixels.shape == self.pixels.shape[1:]:
            self.pixels[index] = pixels
            self.filled[index] = True


def batch_seed(seed: int, epoch: int, first_row: int) -> int:
    """The seed of one batch's augmentation: a function of where the batch is, nothing else."""
    return (seed * 1_000_003 + epoch * 7_919 + first_row) % (2**63 - 1)


class ImageFiles(Dataset):
    """A split of image files: ``(image, target)`` rows, decoded and preprocessed on reading.

    ``__getitems__`` reads a whole batch (the DataLoader calls it with the sampler's indices):
    each file is decoded, then the batch is preprocessed in one call (one at a time where the
    files differ in size until resized) and, in training, augmented in one call.
    """

    def __init__(
        self,
        root: str | Path,
        paths: Sequence[str],
        targets: torch.Tensor,
        channels: int,
        preprocess: Preprocess,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.paths = list(paths)
        self.targets = targets
        self.channels = int(channels)
        self.preprocess = preprocess
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        # CACHE_BYTES says when and why; made on the first file read (its dtype is the block's).
        self._block: _DecodedBlock | None = None
        size = getattr(preprocess, "size", None)  # a Preprocess, or a callable of your own
        self._cacheable = (
            size is not None
            and not getattr(preprocess, "resize", True)
            and _DecodedBlock.fits(len(self.paths), (self.channels, *size))
        )

    def set_epoch(self, epoch: int) -> None:
        """Seeds the coming epoch's augmentation (call it before the loader's iterator is made:
        its workers take a copy of this dataset)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def raw(self, index: int) -> torch.Tensor:
        """Row ``index``'s file decoded: ``(C, H', W')`` raw pixel values."""
        pixels = self._block.get(index) if self._block is not None else None
        if pixels is None:
            pixels = decode(self.root / self.paths[index], self.channels)
            if self._cacheable:
                if self._block is None:
                    self._block = _DecodedBlock(len(self.paths), tuple(pixels.shape), pixels.dtype)
                self._block.put(index, pixels)
        return pixels

    def image(self, index: int) -> torch.Tensor:
        """Row ``index``'s image, preprocessed, not augmented: ``(C, H, W)``."""
        return self.preprocess(self.raw(index).unsqueeze(0))[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = self.__getitems__([index])
        return images[0], targets[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        raw = [self.raw(i) for i in indices]
        if len({tuple(r.shape) for r in raw}) == 1:  # one call for the batch: half the time
            images = self.preprocess(torch.stack(raw))
        else:  # files of different sizes, resized one at a time
            images = torch.cat([self.preprocess(r.unsqueeze(0)) for r in raw])
        if self.augment is not None and indices:
            # Seeded by where the batch is (fork_rng leaves the process's own state as it was).
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(batch_seed(self.seed, self.epoch, int(indices[0])))
                images = self.augment(images)
        return images, self.targets[torch.as_tensor(indices, dtype=torch.long)]
