"""The validation record beside the data: what ``validate`` writes, what the commands require.

``python -m <package>.data.validate`` writes ``<processed_dir>.validation.json``
(``data/processed.validation.json``): the md5 of exactly the files it checked, the settings its
checks ran with and its verdict. For image data the record also holds a digest of the image
files the manifests list (``image_checks.files_digest``: each file's path, size and
modification time), so an image replaced, edited, added or removed after validate is refused as
changed data. ``train``, ``tune`` and ``evaluate`` call ``require_validated``
before they read the data: it refuses (exit 5) data that failed validation, changed since, or was
never validated. Here, not in ``validate.py``, because commands never import each other
(``tests/test_layers.py``).
"""

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .checks import DataValidationError, unreadable_parquet
from .schemas import SPLITS, is_images, is_text
from .version import digest, file_md5s

#: Within-split repeated rows above this share fail validation (``data.max_duplicate_share``).
DEFAULT_MAX_DUPLICATE_SHARE = 0.01


def record_path(processed_dir: str | Path) -> Path:
    """Where validate records its verdict: beside the data, ``data/processed.validation.json``."""
    processed_dir = Path(processed_dir)
    return processed_dir.with_name(f"{processed_dir.name}.validation.json")


def checked_settings(cfg: DictConfig) -> dict:
    """The settings the checks ran with: a record made with looser ones does not count."""
    data = cfg.data
    settings = {
        "data.name": data.name,
        "data.drift": OmegaConf.to_container(data.drift, resolve=True),
        "data.max_duplicate_share": float(
            data.get("max_duplicate_share", DEFAULT_MAX_DUPLICATE_SHARE)
        ),
    }
    keys: tuple[str, ...] = ()
    if is_images(data):  # what the files were checked against
        keys = ("image_shape", "pixel_range", "resize", "num_classes")
    elif is_text(data):  # what the texts and the tokenizer were checked against
        keys = ("tokenizer", "max_length", "text_length", "num_classes")
    for key in keys:
        value = data.get(key)
        settings[f"data.{key}"] = (
            OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        )
    return settings


def image_files_digest(processed_dir: Path) -> str:
    """The digest of the image files the manifests list (``image_checks.files_digest``: each
    file's path, size and modification time): what an image dataset's record must also match.
    Kept apart from the processed files' md5, which stays the md5 DVC records for them."""
    import pandas as pd

    from .image_checks import files_digest
    from .images import read_images_record

    root, _ = read_images_record(processed_dir)
    columns = ["path"]
    paths = [
        p
        for s in SPLITS
        for p in pd.read_parquet(processed_dir / f"{s}.parquet", columns=columns)["path"]
    ]
    return files_digest(root, paths)


def require_validated(cfg: DictConfig) -> str:
    """The md5 of the processed data, when ``validate`` passed on exactly these files.

    Otherwise a ``DataValidationError`` (exit 5 in every command) that says why: a file is
    missing or unreadable, validation was never run, the files changed since it ran, or it
    failed (naming the checks).
    """
    import pyarrow.parquet as pq

    from .datasets import require_prepared  # imports torch: validate needs none

    processed_dir = Path(cfg.paths.processed_dir)
    require_prepared(processed_dir)
    for name in SPLITS:  # a truncated or empty file is named first, with the command to rebuild it
        path = processed_dir / f"{name}.parquet"
        try:
            pq.read_metadata(path)
        except Exception as error:
            raise unreadable_parquet(path, error) from None
    package = __name__.split(".")[0]
    command = f"`make validate` (python -m {package}.data.validate)"
    files = file_md5s(processed_dir)
    md5 = digest(files)
    path = record_path(processed_dir)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        validated = record["md5"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataValidationError(
            f"validation has not been run on the data in {processed_dir} ({path} is missing or "
            f"unreadable): run {command} first. Only data that passed validation is used."
        ) from None
    if validated != md5:
        known = record.get("files") or {}
        changed = sorted(n for n in set(files) | set(known) if files.get(n) != known.get(n))
        raise DataValidationError(
            f"validation has not been run on THIS data: {', '.join(changed) or 'the files'} in "
            f"{processed_dir} changed since validate checked them (validated md5 {validated}, "
            f"now {md5}). Run {command} again; only data that passed validation is used."
        )
    if is_images(cfg.data) and record.get("images") != image_files_digest(processed_dir):
        # An image replaced, edited, added or removed since validate decoded it.
        raise DataValidationError(
            f"validation has not been run on THIS data: the image files that the manifests in "
            f"{processed_dir} list changed since validate checked them (a file replaced, edited, "
            f"added or removed). Run {command} again; only data that passed validation is used."
        )
    settings = checked_settings(cfg)
    if record.get("settings") != settings:
        known = record.get("settings") or {}
        differ = [k for k in settings if known.get(k) != settings[k]]
        raise DataValidationError(
            f"the data in {processed_dir} was validated with other settings than this run's "
            + "; ".join(f"{k}: validated {known.get(k)!r}, now {settings[k]!r}" for k in differ)
            + f". Run {command} with this run's settings."
        )
    if not record.get("passed"):
        checks = "; ".join(record.get("failed_checks") or ["unknown"])
        raise DataValidationError(
            f"validation failed on the data in {processed_dir} (md5 {md5}): {checks}. Nothing "
            f"trains on data validation rejected: fix the data or its source, prepare it again "
            f"and run {command} (report: {record.get('report', 'reports/validation.json')})."
        )
    return md5


def vouches_for(processed_dir: str | Path, name: str, md5: str, schema_md5: str | None) -> bool:
    """Whether a passing validation record holds file ``name`` with this md5, checked under the
    schema whose digest is ``schema_md5``: its schema check would then pass again."""
    if schema_md5 is None:
        return False
    try:
        record: Any = json.loads(record_path(processed_dir).read_text(encoding="utf-8"))
        files = record["files"]
        return (
            record["passed"] is True and files.get(name) == md5 and record["schema"] == schema_md5
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
