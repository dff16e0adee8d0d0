"""Checkpoints: what a run needs to continue exactly where it stopped, written so it survives.

A checkpoint is a plain dict saved with ``torch.save`` and loadable with
``torch.load(path, weights_only=True)``: ``model``, ``optimizer``, ``scheduler``, ``scaler``,
``trainer_state`` (step, epoch, position in the epoch, best metric, early-stopping counter, the
tracking run id), ``rng`` (python, numpy, torch and CUDA generator states, one entry per rank),
``config`` (the resolved config as plain containers; a resume compares it with its own,
``resume.py``), ``world_size`` and ``train_log`` (the loss window in progress and the last
logged metrics, so that a resumed run reports what the whole run would have), and with
``trainer.ema`` on, ``ema`` (``{"model": <the averaged weights, the keys of model>, "steps": n}``:
what ``weights`` gives evaluate, predict and export).

Files in ``<output_dir>/checkpoints/``: ``step-N.pt`` (the newest ``keep_last`` are kept),
``last.pt`` (the newest of them) and ``best.pt`` (the best validation so far). Every file is
written to a temporary file in the same folder, flushed to disk and renamed over the old one, so
a crash mid-write leaves the previous file intact; old files are removed only afterwards.

Under ``trainer.strategy=fsdp`` a checkpoint is a folder ``step-N/`` of shards (``sharded.py``
writes and reads them; ``resolve`` finds them too): atomic at the folder level (written as
``.step-N.tmp/``, renamed when whole). ``last`` is not materialised there: ``ckpt_path=last``
takes the newest whole ``step-N/``; ``best/`` is a folder of hard links to the best step's files,
swapped in by two renames. Every checkpoint records ``strategy`` (``fsdp``, ``ddp`` or ``none``).
"""

import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..models.build import served_weights as weights  # noqa: F401 (training's name for it)

FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


def rng_state() -> dict[str, Any]:
    """This process's generator states, as types ``torch.load(weights_only=True)`` accepts.

    The two Mersenne Twister states (624 words each) are int64 tensors: as lists of Python ints
    they were 1,250 objects to pickle, a third of a small model's checkpoint write.
    """
    version, mt_state, gauss = random.getstate()
    legacy = np.random.get_state()  # noqa: NPY002
    assert isinstance(legacy, tuple)  # legacy=True (the default): a tuple, not the dict form
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = legacy
    state: dict[str, Any] = {
        "python": [version, torch.tensor(mt_state, dtype=torch.int64), gauss],
        "numpy": [
            str(np_name),
            torch.from_numpy(np_keys.astype(np.int64)),
            int(np_pos),
            int(np_has_gauss),
            float(np_gauss),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """The states ``rng_state`` saved (older checkpoints hold the two states as lists of ints)."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(_ints(mt_state)), gauss))
    name, keys, pos, has_gauss, gauss_value = state["numpy"]
    keys = np.asarray(_ints(keys), dtype=np.uint32)
    np.random.set_state((name, keys, pos, has_gauss, gauss_value))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _ints(values: Any) -> list[int]:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` name ``source``'s content, atomically (a hard link where possible)."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # no hard links on this file system
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def step_files(folder: Path) -> list[Path]:
    """The ``step-N.pt`` files in ``folder``, newest (highest N) first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def save(
    state: dict[str, Any], folder: Path, step: int, keep_last: int, best: bool = False
) -> Path:
    """Write ``step-<step>.pt``, point ``last.pt`` at it (and ``best.pt`` when ``best``: the
    same state, written once), then remove the older step files."""
    path = folder / f"step-{step}.pt"
    atomic_save(state, path)
    link_or_copy(path, folder / "last.pt")
    if best:
        link_or_copy(path, folder / "best.pt")
    for old in step_files(folder)[max(keep_last, 1) :]:
        old.unlink(missing_ok=True)
    return path


def save_best(state: dict[str, Any], folder: Path) -> Path:
    path = folder / "best.pt"
    atomic_save(state, path)
    return path


def load_file(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"model", "optimizer", "trainer_state"} - set(state)
    if missing:
        raise ValueError(f"not a checkpoint of this trainer: missing {sorted(missing)}")
    return state


def resolve(ckpt_path: str | None, checkpoint_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """The checkpoint to resume from: None (start afresh), or its state and path.

    ``ckpt_path`` is null, ``last`` (the newest readable checkpoint in ``checkpoint_dir``; none:
    start afresh), a folder (its newest readable checkpoint) or a file. When the newest file is
    unreadable (a crash mid-copy, a full disk), the next older one is used, with a warning.
    """
    if ckpt_path is None:
        return None
    if str(ckpt_path) == "last":
        folder, required = checkpoint_dir, False
    else:
        given = Path(str(ckpt_path))
        if given.is_file():
            try:
                return load_file(given), given
            except Exception as error:
                raise CheckpointError(
                    f"ckpt_path={given} cannot be read as a checkpoint ({error}). Pass another "
                    "file, or ckpt_path=last to take the newest readable one in the run's folder."
                ) from None
        if not given.is_dir():
            raise CheckpointError(
                f"ckpt_path={given} does not exist. Pass a .pt file written by this trainer "
                "(<output_dir>/checkpoints/last.pt), a run's folder, or ckpt_path=last together "
                "with paths.output_dir=<the run's folder>."
            )
        if _is_sharded(given):  # one sharded checkpoint folder (step-N/, best/)
            return _read(given, fallback=False), given
        folder = given / "checkpoints" if (given / "checkpoints").is_dir() else given
        required = True
    candidates = [folder / "last.pt", *step_files(folder)] if folder.is_dir() else []
    candidates = [path for path in candidates if path.is_file()]
    candidates += sharded_step_dirs(folder)  # trainer.strategy=fsdp: step-N/ folders
    if not candidates:
        if required:
            raise CheckpointError(
                f"ckpt_path={ckpt_path}: no checkpoint (last.pt, step-N.pt, step-N/) in {folder}."
            )
        return None
    failures = []
    for path in candidates:
        try:
            state = _read(path)
        except Exception as error:
            failures.append(f"{path.name}: {error}")
            warnings.warn(
                f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); "
                "falling back on the previous one",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        return state, path
    raise CheckpointError(
        f"no readable checkpoint in {folder}: " + "; ".join(failures) + ". Start afresh with "
        "ckpt_path=null, or restore the folder from a backup."
    )


# ---- sharded checkpoint folders (trainer.strategy=fsdp; sharded.py writes them) -----------------


def _is_sharded(path: Path) -> bool:
    from . import sharded

    return sharded.is_sharded(path)


def sharded_step_dirs(folder: Path) -> list[Path]:
    from . import sharded

    return sharded.step_dirs(folder)


def _read(path: Path, fallback: bool = True) -> dict[str, Any]:
    """A single file's dict, or a sharded folder's ``trainer.pt`` (its ``sharded`` key set to
    the folder: the model and optimizer are loaded from the shards by every rank)."""
    if not path.is_dir():
        return load_file(path)
    from . import sharded

    try:
        return {**sharded.load_meta(path), "sharded": str(path)}
    except Exception as error:
        if fallback:
            raise
        raise CheckpointError(
            f"ckpt_path={path} cannot be read as a sharded checkpoint ({error}). Pass a whole "
            "step-N/ folder, or ckpt_path=last to take the newest readable one in the run's "
            "folder."
        ) from None
