"""Batch inference on image files: ``python -m <package>.predict`` for image data.

- ``image_paths``: the files ``input=`` names: a folder (searched recursively for files ending
  in ``IMAGE_SUFFIXES``), a glob pattern, one image file, or a ``.txt`` file listing paths (one a
  line, relative to the list's folder; blank lines and lines starting with ``#`` are skipped).
- ``predict_files``: each file decoded (``data/images.py``) and preprocessed on its own, as the
  data loaders did in training (files may differ in size), a batch stacked and run through the
  checkpoint's ``ImagePredictor``; one row per file, ``path`` then the task's columns, streamed
  to ``output`` batch by batch: no more than a batch of images is ever held.

A file that cannot be used (not decodable, other channels, pixels outside ``data.pixel_range``,
another size than ``data.image_shape`` where the checkpoint was trained with ``data.resize``
false) refuses the whole run, as a bad row of a table does: every bad file is named (the first
ten, and how many), and nothing is written.
"""

import glob
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from omegaconf import DictConfig

from .batch import TABLE_SUFFIXES, output_and_batch_size
from .data.checks import DataValidationError
from .data.images import IMAGE_SUFFIXES, ImageDecodeError, decode
from .inference import checkpoint_task, load_checkpoint, predictor, trained_config

#: How many bad files the error names (it says how many there are in all).
NAMED_BAD_FILES = 10


def predict_files(cfg: DictConfig) -> int:
    """``python -m <package>.predict`` for images: predictions for the files ``cfg.input``
    names, written to ``cfg.output``; returns how many files were predicted."""
    output, batch_size = output_and_batch_size(cfg)
    state, path = load_checkpoint(cfg.ckpt_path)
    data = trained_config(state, path, cfg).data
    files = image_paths(str(cfg.input))
    model, device = predictor(state, path, cfg, cfg.trainer.accelerator)
    task = checkpoint_task(state, path)
    channels, size = int(data.image_shape[0]), tuple(int(d) for d in data.image_shape[1:])
    resize = bool(data.get("resize", True))
    low, high = model.preprocess.low, model.preprocess.low + model.preprocess.span
    bad: list[str] = []
    writer = _Writer(output)
    try:
        for start in range(0, len(files), batch_size):
            names, images = [], []
            for name, file in files[start : start + batch_size]:
                try:
                    pixels = decode(file, channels)
                except ImageDecodeError as error:
                    bad.append(str(error))
                    continue
                why = _unusable(pixels, size, resize, low, high)
                if why:
                    bad.append(f"{file}: {why}")
                elif not bad:  # after a bad file, only look for the others
                    names.append(name)
                    images.append(model.preprocess(pixels.unsqueeze(0))[0])
            if bad or not images:
                continue
            with torch.no_grad():
                answers = model.answers(torch.stack(images).to(device)).float().cpu()
            columns = task.columns(answers.double().numpy())
            writer.write(pd.DataFrame({"path": names, **columns}))
        if bad:
            raise DataValidationError(_bad_files_message(bad, len(files)))
        writer.close()
    finally:
        writer.abort()  # nothing left behind unless close() moved the whole file into place
    return len(files)


def image_paths(spec: str) -> list[tuple[str, Path]]:
    """``(name, file)`` of each image ``input=`` names, in a stable order: ``name`` is what the
    output's ``path`` column says (the path as the folder, the glob or the list gave it)."""
    given = Path(spec)
    if given.is_dir():
        found = sorted(
            p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        where = f"the folder {given} holds no file ending in {', '.join(IMAGE_SUFFIXES)}"
        files = [(str(p), p) for p in found]
    elif given.suffix == ".txt" and given.is_file():
        lines = given.read_text(encoding="utf-8").splitlines()
        entries = [line.strip() for line in lines]
        entries = [e for e in entries if e and not e.startswith("#")]
        where = f"the list {given} names no file"
        files = [(entry, given.parent / entry) for entry in entries]
    elif given.is_file():
        if given.suffix.lower() in (*TABLE_SUFFIXES, ".npy"):
            raise DataValidationError(
                f"input={given} is a table, but this model was trained on image files: pass "
                "a folder of images, a glob pattern (quoted: 'input=photos/*.jpg'), one image "
                "file, or a .txt file listing image paths (one per line)."
            )
        where, files = "", [(spec, given)]
    elif glob.has_magic(spec):
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        where = f"the pattern {spec} matches no file"
        files = [(str(p), p) for p in found]
    else:
        raise FileNotFoundError(
            f"input={spec} does not exist: pass a folder of images, a glob pattern, an image "
            "file or a .txt list of paths; relative paths are relative to where you run."
        )
    if not files:
        raise DataValidationError(f"input={spec}: {where}; nothing to predict.")
    return files


def _unusable(
    pixels: torch.Tensor, size: tuple[int, ...], resize: bool, low: float, high: float
) -> str:
    """Why a decoded image cannot go to the model ("" when it can)."""
    found = tuple(pixels.shape[-2:])
    if found != size and not resize:
        return (
            f"{found[0]}x{found[1]} pixels, the model takes {size[0]}x{size[1]} "
            "(data.image_shape) and was trained with data.resize=false: resize the file"
        )
    smallest, largest = float(pixels.min()), float(pixels.max())
    if smallest < low or largest > high:
        return (
            f"pixel values {smallest:g}..{largest:g} outside data.pixel_range "
            f"[{low:g}, {high:g}] the model was trained with"
        )
    return ""


def _bad_files_message(bad: list[str], total: int) -> str:
    named = "\n".join(f"  {line}" for line in bad[:NAMED_BAD_FILES])
    more = f"\n  ... and {len(bad) - NAMED_BAD_FILES} more" if len(bad) > NAMED_BAD_FILES else ""
    which = f"the first {NAMED_BAD_FILES}" if more else "each"
    return (
        f"{len(bad)} of the {total} input files cannot be used, so nothing was predicted or "
        f"written ({which} below); fix or remove them:\n{named}{more}"
    )


class _Writer:
    """Batches of predictions appended to a hidden file beside ``path``, moved over ``path`` only
    when every batch is in (``close``); ``abort`` removes what an unfinished run wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.tmp")
        self.parquet: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if self.rows == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix == ".parquet":
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.partial, table.schema)
            self.parquet.write_table(table)  # one row group per batch
        else:
            frame.to_csv(
                self.partial, mode="a" if self.rows else "w", header=not self.rows, index=False
            )
        self.rows += len(frame)

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
            self.parquet = None
        self.partial.replace(self.path)

    def abort(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
            self.parquet = None
        self.partial.unlink(missing_ok=True)
