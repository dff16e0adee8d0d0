"""The checks of an image dataset's files, behind ``validate``; and the digest that ties its
validation record to the files.

Each listed file is read once: its bytes are hashed (md5: the same image under two names, or in
two splits, is found by content) and decoded from memory with the expected number of channels,
then its size and value range are compared with the config (``data.image_shape``,
``data.resize``, ``data.pixel_range``). One pass, one file at a time: the time is linear in the
number of files, and memory holds one image.

``files_digest`` is what the validation record keeps of the files: an md5 over the
``(path, size, mtime_ns)`` of every listed file. It costs one ``stat`` a file (the commands
take it at every start, where hashing every image's bytes again would cost as much as
validating); an image replaced, edited, added to or removed from the manifests changes it. A
change that keeps a file's size and modification time to the nanosecond (a deliberate ``touch
-d``) is not seen; copying the data elsewhere (a clone, ``dvc pull``) changes the times, so
validate runs again there.
"""

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .checks import Failure
from .images import ImageChannelsError, ImageDecodeError, decode

# At most this many examples of each failure are listed; every file is still counted.
_EXAMPLES = 5


def files_digest(root: Path, paths: Iterable[str]) -> str:
    """An md5 over ``(path, size, mtime_ns)`` of each file (``missing`` where there is none)."""
    md5 = hashlib.md5(usedforsecurity=False)
    for path in sorted(set(paths)):
        try:
            info = os.stat(root / path)
            entry = f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n"
        except OSError:
            entry = f"{path}\0missing\n"
        md5.update(entry.encode("utf-8", "surrogateescape"))
    return md5.hexdigest()


class _Found:
    """The failures of one check: a count, and the first few files and rows."""

    def __init__(self) -> None:
        self.values: list = []
        self.rows: list[int] = []
        self.count = 0

    def add(self, value, row: int) -> None:
        self.count += 1
        if len(self.values) < _EXAMPLES:
            self.values.append(value)
            self.rows.append(row)


def file_failures(
    root: Path,
    splits: dict[str, pd.DataFrame],
    image_shape: list[int],
    resize: bool,
    value_range: tuple[float, float],
) -> tuple[list[Failure], dict[str, pd.Series]]:
    """Every listed file decoded and checked: ``(failures, {split: md5 of each row's file})``."""
    channels, size = int(image_shape[0]), (int(image_shape[1]), int(image_shape[2]))
    low, high = value_range
    failures, contents = [], {}
    for name, frame in splits.items():
        found = {check: _Found() for check in _CHECKS}
        md5s = []
        for row, path in enumerate(frame["path"].tolist()):
            file = root / path
            try:
                content = file.read_bytes()
            except OSError as error:
                found["exists"].add(f"{path} ({type(error).__name__})", row)
                md5s.append(f"unreadable:{path}")
                continue
            md5s.append(hashlib.md5(content, usedforsecurity=False).hexdigest())
            try:
                pixels = decode(file, channels, content)
            except ImageChannelsError as error:
                found["channels"].add(f"{path} ({str(error).split(': ')[1].split(',')[0]})", row)
                continue
            except ImageDecodeError:
                found["decodable"].add(path, row)
                continue
            if not resize and tuple(pixels.shape[1:]) != size:
                found["size"].add(f"{path} ({pixels.shape[1]}x{pixels.shape[2]})", row)
            smallest, largest = int(pixels.min()), int(pixels.max())
            if smallest < low or largest > high:
                found["range"].add(f"{path} ({smallest}..{largest})", row)
        contents[name] = pd.Series(md5s, index=frame.index, dtype=object)
        for check, result in found.items():
            if result.count:
                failures.append(
                    Failure(
                        name,
                        "path",
                        _CHECKS[check].format(
                            channels=channels, h=size[0], w=size[1], low=low, high=high
                        ),
                        result.values,
                        result.rows,
                        result.count,
                    )
                )
    return failures, contents


# The check names in the failure table (the report's "check" column).
_CHECKS = {
    "exists": "file exists and is readable",
    "decodable": "decodable image (PNG, JPEG, ...)",
    "channels": "{channels} channel(s) (data.image_shape[0])",
    "size": "size {h}x{w} (data.image_shape; or set data.resize: true)",
    "range": "pixel values in [{low:g}, {high:g}] (data.pixel_range)",
}


def content_frames(
    splits: dict[str, pd.DataFrame], contents: dict[str, pd.Series]
) -> dict[str, pd.DataFrame]:
    """Each split's ids beside the md5 of each row's file: what ``checks.duplicated_content``
    compares (the same file content in two splits is leakage, whatever its name)."""
    return {
        name: pd.DataFrame({"id": frame["id"].to_numpy(), "file_md5": contents[name].to_numpy()})
        for name, frame in splits.items()
    }


def all_paths(splits: dict[str, pd.DataFrame]) -> list[str]:
    """Every path the manifests list."""
    return [p for frame in splits.values() for p in frame["path"].astype(str).tolist()]
