"""Datasets for training and evaluation: the processed splits as tensors, or image files.

Image data is read from its files a batch at a time (``images.ImageFiles``); a table's split
fits in memory (Parquet is column-major: the feature columns are read in
one go and turned into a row-major array once). Each split is checked against its processed
schema on loading, so nothing trains on data that breaks it, whichever command started it; the
check is not repeated when ``validate``'s passing record holds exactly these bytes, checked under
the same schema: it would pass again, and it costs 30 ms a split (pandera's per-column work).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Literal, overload

import numpy as np
import pandera.pandas as pa
import torch
from omegaconf import DictConfig
from torch.utils.data import TensorDataset

from .checks import (
    DataValidationError,
    format_failures,
    read_processed,
    schema_failures,
    unreadable_parquet,
)
from .images import ImageFiles, preprocess_for, read_images_record
from .record import vouches_for
from .schemas import (
    MANIFEST_COLUMNS,
    SPLITS,
    TEXT_COLUMNS,
    ImageManifest,
    TextSplit,
    is_images,
    is_text,
    label_range_failures,
    schemas_for,
    text_failures,
)
from .streaming import ParquetStream, stream_split, streams
from .text import TokenizedText, load_tokenizer, tokenizer_from_json
from .version import bytes_md5, schema_digest

# What load_split gives: a split in memory, or (lazy=True, a table larger than memory) a stream.
InMemorySplit = TensorDataset | ImageFiles | TokenizedText
Split = InMemorySplit | ParquetStream


@overload
def load_split(
    data: DictConfig,
    processed_dir: str | Path,
    split: str,
    targets: Callable[[np.ndarray], torch.Tensor],
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    *,
    lazy: Literal[False] = False,
    tokenizer_json: str | None = None,
) -> InMemorySplit: ...


@overload
def load_split(
    data: DictConfig,
    processed_dir: str | Path,
    split: str,
    targets: Callable[[np.ndarray], torch.Tensor],
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    *,
    lazy: bool,
    tokenizer_json: str | None = None,
) -> Split: ...


def load_split(
    data: DictConfig,
    processed_dir: str | Path,
    split: str,
    targets: Callable[[np.ndarray], torch.Tensor],
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    *,
    lazy: bool = False,
    tokenizer_json: str | None = None,
) -> Split:
    """``(features, target)`` tensors of one split: ``train``, ``val`` or ``test``.

    ``augment`` (training only) acts on a batch of images; image datasets read from files
    pass it to ``ImageFiles`` (tables have nothing to augment and ignore it).

    Features are float32 tensors in memory for tables; for image data (``data.image_shape``) an
    ``ImageFiles`` over the split's manifest, which decodes its files a batch at a time.
    ``targets`` (the task's, ``tasks/``) turns the target column into the tensor the loss
    expects. ``lazy`` (the trainer): a table larger than ``data.stream`` allows is a
    ``ParquetStream`` instead, read a few row groups at a time (``streaming.py``).

    Text data (``data.tokenizer`` set) is a ``TokenizedText``: the split's texts as token ids,
    from the prepared ``tokenizer.json``, or from ``tokenizer_json`` (a checkpoint's copy:
    evaluate tokenizes with the tokenizer the model was trained with).
    """
    labelled = is_images(data) or is_text(data)  # label: a class index below num_classes
    processed_schema: type[pa.DataFrameModel]
    features: list[str]
    if is_images(data):
        processed_schema, features = ImageManifest, []
    elif is_text(data):
        processed_schema, features = TextSplit, []
    else:
        _, processed_schema, features = schemas_for(data.name)
    require_prepared(processed_dir, (split,))
    path = Path(processed_dir) / f"{split}.parquet"
    if lazy and streams(data, path):
        return stream_split(data, processed_dir, path, processed_schema, features, targets)
    try:
        content = path.read_bytes()  # hashed and parsed: the md5 is that of what is used
    except OSError as error:  # unreadable (permissions, a folder): named as pyarrow's errors are
        raise unreadable_parquet(path, error) from None
    frame = read_processed(path, content)
    columns = (
        MANIFEST_COLUMNS
        if is_images(data)
        else TEXT_COLUMNS
        if is_text(data)
        else ["id", *features, data.target]
    )
    vouched = vouches_for(
        processed_dir, path.name, bytes_md5(content), schema_digest(processed_schema, columns)
    )
    failures = [] if vouched else schema_failures(processed_schema, frame, split, columns)
    if is_text(data) and not vouched:  # lengths and labels, within the config's bounds
        failures += text_failures(frame, split, data)
    elif labelled and not vouched:
        failures += label_range_failures(frame, split, int(data.num_classes))
    if failures:
        raise DataValidationError(
            f"{path} breaks its schema; refusing to use it:\n{format_failures(failures)}"
        )
    if is_images(data):
        root, _ = read_images_record(processed_dir)
        return ImageFiles(
            root,
            frame["path"].tolist(),
            targets(frame["label"].to_numpy(copy=True)),
            int(data.image_shape[0]),
            preprocess_for(data),
            augment,
            seed,
        )
    if is_text(data):
        if tokenizer_json is None:
            tokenizer, tokenizer_json = load_tokenizer(processed_dir)
        else:
            tokenizer = tokenizer_from_json(tokenizer_json)
        return TokenizedText(
            frame["text"].tolist(),
            targets(frame["label"].to_numpy(copy=True)),
            tokenizer,
            tokenizer_json,
            int(data.max_length),
        )
    inputs = torch.from_numpy(frame[features].to_numpy(dtype=np.float32, copy=True))
    return TensorDataset(inputs, targets(frame[data.target].to_numpy()))


def require_prepared(processed_dir: str | Path, splits: tuple[str, ...] = SPLITS) -> None:
    """Raise ``FileNotFoundError``, with the command that makes them, when a split is missing."""
    missing = [s for s in splits if not (Path(processed_dir) / f"{s}.parquet").is_file()]
    if missing:
        package = __name__.split(".")[0]
        raise FileNotFoundError(
            f"{Path(processed_dir) / (missing[0] + '.parquet')} does not exist: prepare the data "
            f"first with `make prepare` (or `python -m {package}.data.prepare`, or `dvc pull` "
            "where a DVC remote holds it), or point paths.data_dir at prepared data."
        )


def num_features(data: DictConfig) -> int:
    """The width of a flattened input row (of an image: its pixel count; of a text: its
    longest token count)."""
    if is_images(data):
        return int(np.prod(list(data.image_shape)))
    if is_text(data):
        return int(data.max_length)
    return len(schemas_for(data.name)[2])
