"""Datasets for training and evaluation: the processed splits as tensors.

The whole of each split fits in memory (Parquet is column-major: the feature columns are read in
one go and turned into a row-major array once). Each split is checked against its processed
schema on loading, so nothing trains on data that breaks it, whichever command started it; the
check is not repeated when ``validate``'s passing record holds exactly these bytes, checked under
the same schema: it would pass again, and it costs 30 ms a split (pandera's per-column work).
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
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
from .record import vouches_for
from .schemas import SPLITS, schemas_for
from .version import bytes_md5, schema_digest


def load_split(
    data: DictConfig,
    processed_dir: str | Path,
    split: str,
    targets: Callable[[np.ndarray], torch.Tensor],
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TensorDataset:
    """``(features, target)`` tensors of one split: ``train``, ``val`` or ``test``.

    ``augment`` (training only) acts on a batch of images; image datasets read from files
    pass it to ``ImageFiles`` (tables have nothing to augment and ignore it).

    Features are float32, shaped ``data.image_shape`` per row for images; ``targets`` (the
    task's, ``tasks/``) turns the target column into the tensor the loss expects.
    """
    _, processed_schema, features = schemas_for(data.name)
    require_prepared(processed_dir, (split,))
    path = Path(processed_dir) / f"{split}.parquet"
    try:
        content = path.read_bytes()  # hashed and parsed: the md5 is that of what is used
    except OSError as error:  # unreadable (permissions, a folder): named as pyarrow's errors are
        raise unreadable_parquet(path, error) from None
    frame = read_processed(path, content)
    columns = ["id", *features, data.target]
    vouched = vouches_for(
        processed_dir, path.name, bytes_md5(content), schema_digest(processed_schema, columns)
    )
    failures = [] if vouched else schema_failures(processed_schema, frame, split, columns)
    if failures:
        raise DataValidationError(
            f"{path} breaks its schema; refusing to use it:\n{format_failures(failures)}"
        )
    inputs = torch.from_numpy(frame[features].to_numpy(dtype=np.float32, copy=True))
    if data.get("image_shape"):
        inputs = inputs.reshape(len(frame), *data.image_shape)
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
    """The width of a flattened input row."""
    return len(schemas_for(data.name)[2])
