"""The version of the data a run used, for the experiment tracker.

With DVC it is the md5 DVC records for ``data/processed`` in ``dvc.lock`` (a directory's md5
ends in ``.dir``); without DVC, or before the first ``dvc repro``, an md5 computed here over the
processed files, so every run records which data it saw either way.
"""

import hashlib
from pathlib import Path

import yaml


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


def files_md5(folder: Path) -> str:
    """One md5 over the names and contents of every file in ``folder``, in a stable order."""
    digest = hashlib.md5(usedforsecurity=False)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.md5(path.read_bytes(), usedforsecurity=False).digest())
    return digest.hexdigest()


def data_version(processed_dir: str | Path, lock_file: str | Path = "dvc.lock") -> dict[str, str]:
    """``{"md5": ..., "source": "dvc.lock" | "files"}`` for the processed data."""
    processed_dir = Path(processed_dir)
    md5 = dvc_md5(Path(lock_file), processed_dir.as_posix())
    if md5 is not None:
        return {"md5": md5, "source": "dvc.lock"}
    return {"md5": files_md5(processed_dir), "source": "files"}
