"""Turn a sharded checkpoint into one file: ``python -m <package>.consolidate FOLDER [OUTPUT]``.

A run with ``trainer.strategy=fsdp`` saves each checkpoint as a folder of shards
(``<run>/checkpoints/step-N/``, ``best/``: ``training/sharded.py``). This command reads one in a
single process (no torchrun) and writes the single ``.pt`` file that evaluate, predict and
export read, loadable with ``torch.load(path, weights_only=True)``: the whole model's weights,
the run's config, task state, feature scale and trainer state, as a single-file checkpoint has
them. FOLDER may also be a run's folder (its ``checkpoints/best/``, else the newest
``step-N/``). OUTPUT defaults to ``<FOLDER>.pt`` beside the folder (``checkpoints/best.pt`` for
``best/``). The optimizer state is kept keyed by parameter name: the file is for evaluation
and serving, not for resuming (resume from the folder, with the same number of processes).

Exit codes: 0 success; 3 not a sharded checkpoint, or a torn or damaged one.
"""

import argparse
from pathlib import Path

from .errors import CheckpointError, reported


def checkpoint_folder(given: Path) -> Path:
    """The sharded checkpoint folder ``given`` names: itself, or a run's best/newest one."""
    from .training import sharded

    if sharded.is_sharded(given):
        return given
    folder = given / "checkpoints" if (given / "checkpoints").is_dir() else given
    found = [folder / "best"] if sharded.is_sharded(folder / "best") else []
    found += sharded.step_dirs(folder)
    if not found:
        raise CheckpointError(
            f"{given} is not a sharded checkpoint folder (no .metadata and trainer.pt) and holds "
            "none (checkpoints/best/, checkpoints/step-N/). Pass a folder written by a run with "
            "trainer.strategy=fsdp; a single-file checkpoint (.pt) needs no consolidation."
        )
    return found[0]


def consolidate(given: Path, output: Path | None = None) -> Path:
    """Write the single-file checkpoint of the sharded ``given``; returns its path."""
    from .training import checkpoint, sharded

    folder = checkpoint_folder(given)
    output = output or folder.with_name(folder.name + ".pt")
    state = sharded.consolidated(folder)
    checkpoint.atomic_save(state, output)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.consolidate",
        description="Write the single-file checkpoint (for evaluate, predict, export) of a "
        "sharded one (trainer.strategy=fsdp).",
    )
    parser.add_argument("folder", type=Path, help="checkpoints/step-N/, best/, or a run folder")
    parser.add_argument("output", type=Path, nargs="?", help="the .pt file (default FOLDER.pt)")
    args = parser.parse_args(argv)
    with reported("consolidate"):
        path = consolidate(args.folder, args.output)
        print(f"wrote {path} (load it with torch.load(path, weights_only=True))")


if __name__ == "__main__":
    main()
