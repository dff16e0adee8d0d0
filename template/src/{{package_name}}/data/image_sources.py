"""Where image files come from: the bundled digits, a folder of class folders, or a manifest.

``data.source`` names one of:

- ``bundled``: scikit-learn's 8x8 digits, written once by ``prepare`` as 8-bit grey PNG files,
  ``<raw_dir>/digits/<class>/<id>.png`` (values 0..16 scaled to 0..255). Raw data is immutable:
  an existing folder is read, never rewritten; delete it to write it again.
- a folder ``<root>/<class>/<file>``: one sub-folder per class, holding its images (any depth
  below it; ``IMAGE_SUFFIXES``). The classes are the sorted sub-folder names, unless
  ``data.class_names`` lists them (then in that order, and only those folders).
- a manifest ``.csv`` or ``.parquet`` file: columns ``path`` (relative to the manifest's folder)
  and ``label`` (a class index, or a class name), optionally ``split`` (train, val or test: the
  split is yours, not prepare's) and ``id``.

Every source becomes an ``ImageSource``: the images' root folder, one row per file (``id``,
``path`` relative to the root, ``label``, and ``split`` where the manifest has one) and the
class names. Files are not opened here (``validate`` decodes every one); what is refused here is
what no check could make sense of: no images, a class folder without images, unknown labels, a
manifest without a ``path`` column, a path that does not exist.
"""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataValidationError
from .images import IMAGE_SUFFIXES
from .schemas import SPLITS
from .sources import read_csv, read_parquet


class ImageSourceError(DataValidationError, ValueError):
    """An image source that cannot be read; the message names the cause and the fix (exit 5)."""


@dataclass
class ImageSource:
    """The files of an image dataset: ``root``, one row per file, the class names."""

    root: Path
    frame: pd.DataFrame  # id, path (relative to root, posix), label[, split]
    class_names: list[str]


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


# --- bundled -----------------------------------------------------------------------------------


def write_bundled_digits(folder: Path) -> None:
    """scikit-learn's digits as 8-bit grey PNG files, ``folder/<class>/<id>.png``, all or nothing
    (written in a temporary folder beside it, renamed into place when complete)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 -> 0..255: 8-bit files like any user's; data.pixel_range is [0, 255].
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for index, (image, label) in enumerate(zip(pixels, bunch.target, strict=True)):
            target = staging / str(int(label)) / f"{index:04d}.png"
            target.parent.mkdir(exist_ok=True)
            Image.fromarray(image, mode="L").save(target)
        staging.replace(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- a folder of class folders ----------------------------------------------------------------


def from_folder(root: Path, class_names: list[str] | None) -> ImageSource:
    """``root/<class>/<file>``: one class per sub-folder."""
    if not root.is_dir():
        raise ImageSourceError(f"data.source={str(root)!r} is neither a folder nor a file.")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ImageSourceError(
            f"{root} holds no class folders: an image folder source is laid out as "
            f"{root}/<class>/<image file>, one sub-folder per class."
        )
    names = list(class_names) if class_names else folders
    missing = [name for name in names if name not in folders]
    if missing:
        raise ImageSourceError(
            f"data.class_names lists {missing}, which {root} has no folder for (its folders: "
            f"{folders}): name the classes as the folders are named."
        )
    rows = []
    for label, name in enumerate(names):
        files = sorted(p for p in (root / name).rglob("*") if _is_image(p))
        if not files:
            raise ImageSourceError(
                f"the class folder {root / name} holds no images (files ending in "
                f"{', '.join(IMAGE_SUFFIXES)}): add its images, remove the folder, or leave it "
                "out of data.class_names."
            )
        rows += [(p.relative_to(root).as_posix(), label) for p in files]
    frame = pd.DataFrame(rows, columns=["path", "label"]).astype({"label": np.int64})
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    return ImageSource(root, frame, names)


# --- a manifest table --------------------------------------------------------------------------


def from_manifest(path: Path, class_names: list[str] | None, read_options: dict) -> ImageSource:
    """A CSV or Parquet table of ``path``, ``label`` (``split``, ``id``), paths relative to it."""
    frame = read_parquet(path) if path.suffix == ".parquet" else read_csv(path, read_options)
    absent = [c for c in ("path", "label") if c not in frame.columns]
    if absent:
        raise ImageSourceError(
            f"the manifest {path} has no {' and no '.join(absent)} column (its columns: "
            f"{list(frame.columns)}): an image manifest lists one file per row, in a column "
            "`path` (relative to the manifest's folder) and its class in a column `label`."
        )
    if frame.empty:
        raise ImageSourceError(f"the manifest {path} lists no images.")
    frame = frame.copy()
    frame["path"] = frame["path"].astype(str)
    labels, names = _labels(frame["label"], class_names, path)
    frame["label"] = labels
    root = path.parent
    gone = [p for p in frame["path"] if not (root / p).is_file()]
    if gone:
        raise ImageSourceError(
            f"the manifest {path} lists {len(gone)} path(s) that do not exist (relative to "
            f"{root}), e.g. {gone[:3]}: fix the paths or remove their rows."
        )
    if "split" in frame.columns:
        frame["split"] = frame["split"].astype(str)
        unknown = sorted(set(frame["split"]) - set(SPLITS))
        if unknown:
            raise ImageSourceError(
                f"the manifest {path} has split values {unknown[:5]}: a split column holds "
                f"{', '.join(SPLITS)} only."
            )
    if "id" not in frame.columns:
        frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    columns = ["id", "path", "label", *(["split"] if "split" in frame.columns else [])]
    return ImageSource(root, frame[columns].reset_index(drop=True), names)


def _labels(
    column: pd.Series, class_names: list[str] | None, path: Path
) -> tuple[pd.Series, list[str]]:
    """Class indices from a label column of indices or of names, and the class names."""
    if pd.api.types.is_integer_dtype(column):
        count = int(column.max()) + 1
        names = list(class_names) if class_names else [str(i) for i in range(count)]
        return column.astype(np.int64), names
    text = column.astype(str)
    names = list(class_names) if class_names else sorted(set(text))
    unknown = sorted(set(text) - set(names))
    if unknown:
        raise ImageSourceError(
            f"the manifest {path} has labels {unknown[:5]} that data.class_names "
            f"({names}) does not list: add them to data.class_names or fix the labels."
        )
    index = {name: i for i, name in enumerate(names)}
    return text.map(index).astype(np.int64), names


# --- any source ---------------------------------------------------------------------------------


def load_image_source(data, raw_dir: Path) -> ImageSource:
    """The files ``data.source`` names (the bundled digits are written to ``raw_dir`` first)."""
    from ..config import as_dict

    class_names = list(data.class_names) if data.get("class_names") else None
    if data.source == "bundled":
        if data.name != "digits":
            raise ImageSourceError(
                f"data.name={data.name!r} has no bundled images (only digits has): set "
                "data.source to a folder of class folders or to a manifest file."
            )
        folder = raw_dir / "digits"
        if not folder.exists():
            write_bundled_digits(folder)
        return from_folder(folder, class_names)
    source = Path(os.path.normpath(data.source))
    if source.is_file():
        if source.suffix not in {".csv", ".parquet"}:
            raise ImageSourceError(
                f"data.source={data.source!r} is a file, but not a .csv or .parquet manifest: "
                "name a folder of class folders or a manifest table."
            )
        options = data.get("read_options")
        read_options = as_dict(options, resolve=False) if options is not None else {}
        return from_manifest(source, class_names, read_options)
    if not source.exists():
        raise ImageSourceError(
            f"data.source={data.source!r} does not exist: name a folder of class folders "
            "(<root>/<class>/<image file>) or a manifest .csv/.parquet file."
        )
    return from_folder(source, class_names)
