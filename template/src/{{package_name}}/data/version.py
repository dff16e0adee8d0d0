"""The version of the data a run used: the digest of the processed files it actually read.

``processed_md5`` hashes the files ``prepare`` writes (the three splits and ``stats.json``) the
way DVC hashes a directory, so while ``data/processed`` holds just those files the digest equals
the md5 that ``dvc repro`` records for it in ``dvc.lock`` (a directory's md5 ends in ``.dir``).
The run records this digest, not ``dvc.lock``'s: data changed outside ``dvc repro`` (prepared
again by hand, copied in, edited) would otherwise be recorded under the old version.
``dvc.lock``'s md5 is kept beside it, and a mismatch is flagged.

``schema_digest`` is the version of a processed schema, kept in the validation record
(``record.py``): a split's check need not be repeated under the schema it passed.
"""

import hashlib
import inspect
import json
from pathlib import Path

import yaml

#: The files ``prepare`` writes to ``data/processed`` and the commands read.
#: (``images.json`` in place of ``stats.json`` for image data: the images' root and classes.)
PROCESSED_FILES = (
    "train.parquet",
    "val.parquet",
    "test.parquet",
    "stats.json",
    "images.json",
    "text.json",
    "tokenizer.json",
)


def dvc_md5(lock_file: Path, out: str) -> str | None:
    """The md5 dvc.lock records for the output ``out``, or None."""
    if not lock_file.is_file():
        return None
    lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    for stage in lock.get("stages", {}).values():
        for entry in stage.get("outs", []):
            if entry.get("path") == out:
                return entry.get("md5")
    return None


def bytes_md5(content: bytes) -> str:
    return hashlib.md5(content, usedforsecurity=False).hexdigest()


def file_md5(path: Path, chunk: int = 2**24) -> str:
    """The md5 of a file, read 16 MiB at a time: a split larger than memory is hashed too."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while block := file.read(chunk):
            md5.update(block)
    return md5.hexdigest()


def digest(file_md5s: dict[str, str]) -> str:
    """One md5 over ``{relative path: md5}``, computed as DVC computes a directory's md5."""
    entries = [{"md5": md5, "relpath": name} for name, md5 in sorted(file_md5s.items())]
    return bytes_md5(json.dumps(entries, sort_keys=True).encode("utf-8")) + ".dir"


def file_md5s(folder: Path, names: tuple[str, ...] = PROCESSED_FILES) -> dict[str, str]:
    """The md5 of each of the files ``names`` in ``folder`` that exists."""
    return {name: file_md5(folder / name) for name in names if (folder / name).is_file()}


def processed_md5(folder: str | Path) -> str:
    """The digest of the processed files in ``folder`` (DVC's md5 when it holds only them)."""
    return digest(file_md5s(Path(folder)))


def data_version(
    processed_dir: str | Path, lock_file: str | Path = "dvc.lock", md5: str | None = None
) -> dict:
    """``{"md5": digest of the files, "dvc_lock_md5": dvc.lock's md5 or None, "matches_dvc_lock":
    whether they agree (None without dvc.lock)}`` for the processed data. ``md5``: the files'
    digest where the caller has just taken it (``validate.require_validated``), not read again."""
    processed_dir = Path(processed_dir)
    md5 = md5 or processed_md5(processed_dir)
    locked = dvc_md5(Path(lock_file), processed_dir.as_posix())
    return {
        "md5": md5,
        "dvc_lock_md5": locked,
        "matches_dvc_lock": None if locked is None else locked == md5,
    }


def schema_digest(schema: type, columns: list[str]) -> str | None:
    """An md5 of what a schema check depends on: the source files of the schema's classes (so
    any edit to data/schemas.py counts), the columns required, and pandera's version. None
    when a source cannot be read (then nothing is vouched for)."""
    import pandera

    parts = [json.dumps(columns), pandera.__version__]
    try:
        files = {
            inspect.getsourcefile(cls)
            for cls in schema.__mro__
            if cls.__module__.split(".")[0] not in {"pandera", "builtins", "typing"}
        }
        parts += [Path(name).read_text(encoding="utf-8") for name in sorted(map(str, files))]
    except (TypeError, OSError):
        return None
    return bytes_md5("\0".join(parts).encode("utf-8"))
