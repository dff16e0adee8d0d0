"""Sharded checkpoints (``trainer.strategy=fsdp``): one folder per checkpoint, written by every
rank at once with ``torch.distributed.checkpoint`` (DCP).

A checkpoint is a folder ``step-N/``: the model's and the optimizer's state as DCP shards
(``__<rank>_0.distcp`` files and ``.metadata``, through ``get_state_dict``/``set_state_dict``,
so the optimizer state is keyed by parameter names), and ``trainer.pt``, a small
``torch.save`` file written by rank 0 with the rest of a single-file checkpoint (scheduler,
scaler, trainer state, every rank's random states, config, world size, strategy, the task's
state, feature scale, the training log). The folder is written as ``.step-N.tmp/`` and renamed
once every rank has written its shard and ``trainer.pt`` is on disk: a folder named ``step-N``
is whole; a torn one keeps its temporary name and is never read.

``last`` is not a file of its own: ``ckpt_path=last`` takes the newest whole ``step-N/`` (the
newest ``checkpoint.keep_last`` are kept). ``best/`` is a folder of hard links to a step
folder's files (or, for a best validation between saves, written as above), swapped in by two
renames: the old one becomes ``.best.old/`` until the new one is in place.

``python -m <package>.consolidate <folder> [output.pt]`` turns a folder into the single file
that evaluate, predict and export read (``consolidate.py``); they also accept a folder and
consolidate it in memory.
"""

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from . import checkpoint, distributed

META_FILE = "trainer.pt"  # the non-sharded part, written by rank 0
_STEP_DIR = re.compile(r"^step-(\d+)$")


def is_sharded(path: Path) -> bool:
    """Whether ``path`` is a sharded checkpoint folder (whole or not)."""
    return path.is_dir() and ((path / META_FILE).exists() or (path / ".metadata").exists())


def step_dirs(folder: Path) -> list[Path]:
    """The ``step-N/`` folders in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [path for _, path in sorted(found, reverse=True) if path.is_dir()]


def load_meta(path: Path) -> dict[str, Any]:
    """``trainer.pt`` of a whole sharded checkpoint folder (raises ValueError when torn)."""
    if not (path / ".metadata").is_file():
        raise ValueError(f"{path} has no .metadata: not a whole sharded checkpoint")
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise ValueError(f"{path} has no {META_FILE}: not a whole sharded checkpoint")
    meta = torch.load(meta_path, map_location="cpu", weights_only=True)
    if "trainer_state" not in meta:
        raise ValueError(f"{meta_path} is not a checkpoint of this trainer: no trainer_state")
    return meta


# ---- saving (a collective: every rank calls it) -------------------------------------------------


def save(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, rest: dict[str, Any], folder: Path,
    name: str, is_main: bool,
) -> Path:  # fmt: skip
    """Write ``folder/name/`` (model and optimizer shards, ``trainer.pt``) through a temporary
    folder; returns its path on every rank."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    target, tmp = folder / name, folder / f".{name}.tmp"
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a crash mid-write
        tmp.mkdir(parents=True)
    distributed.barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(tmp))
    if is_main:
        checkpoint.atomic_save(rest, tmp / META_FILE)
        _replace_dir(tmp, target)
    distributed.barrier()
    return target


def _replace_dir(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, setting an existing ``target`` aside first."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(source, target)
    checkpoint._fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def link_best(step_dir: Path, folder: Path) -> Path:
    """``best/``: hard links to ``step_dir``'s files (copies where links are refused)."""
    tmp, best = folder / ".best.tmp", folder / "best"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(step_dir, tmp, copy_function=_link_or_copy)
    _replace_dir(tmp, best)
    return best


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def prune(folder: Path, keep_last: int) -> None:
    """Remove all but the newest ``keep_last`` step folders."""
    for old in step_dirs(folder)[max(keep_last, 1) :]:
        shutil.rmtree(old, ignore_errors=True)


# ---- loading ------------------------------------------------------------------------------------


def load(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, path: Path) -> None:
    """Load ``path``'s shards into the sharded ``model`` (and ``optimizer``): a collective."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_state_dict,
        set_model_state_dict,
        set_state_dict,
    )

    if optimizer is None:
        model_state = get_model_state_dict(model)
        dcp.load({"model": model_state}, checkpoint_id=str(path))
        set_model_state_dict(model, model_state)
        return
    model_state, optim_state = get_state_dict(model, optimizer)
    state: dict[str, Any] = {"model": model_state, "optimizer": optim_state}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"]
    )


def consolidated(path: Path) -> dict[str, Any]:
    """A whole checkpoint dict (``model`` as plain tensors) from a sharded folder, in one
    process: what ``torch.load`` of a single-file checkpoint returns, for evaluate, predict and
    export. The optimizer state stays keyed by parameter name (not resumable from one file)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    try:
        meta = load_meta(path)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a whole sharded checkpoint ({error}). Pass a step-N/ or best/ "
            "folder of <run>/checkpoints/ written by a finished save (a .step-N.tmp/ folder "
            "is a save that was cut short)."
        ) from None
    with tempfile.TemporaryDirectory() as scratch:
        whole = Path(scratch) / "whole.pt"
        try:
            dcp_to_torch_save(str(path), str(whole))
            shards = torch.load(whole, map_location="cpu", weights_only=True)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise CheckpointError(
                f"{path}: the shards cannot be read ({type(error).__name__}: {first}). The "
                "folder is torn or damaged: use another checkpoint (an older step-N/)."
            ) from None
    return {**meta, "model": shards["model"], "optimizer": shards.get("optimizer", {})}
