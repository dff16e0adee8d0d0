"""Where the Hydra configs live, and composing them outside an entry point.

Entry points use ``@hydra.main(config_path=CONFIG_DIR, ...)``; tests and notebooks use
``compose()``. ``python -m <package>.config`` writes ``params.yaml``, the composed default config
that DVC's stages run with (``make params``); ``--check`` fails when it is out of date.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# src/<package>/config.py -> the project root, which holds configs/. Run commands from the root:
# the paths in configs/paths/ are relative to it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = str(PROJECT_ROOT / "configs")


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The config an entry point would see with these command-line overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def params_yaml(overrides: Sequence[str] = ()) -> str:
    """The composed, resolved config as DVC writes it to params.yaml (`dvc exp run -S ...`).

    It is the ``evaluate`` config: everything of ``train`` plus the evaluation settings, so
    every stage of the pipeline reads its keys from one file.
    """
    config = compose(overrides, config_name="evaluate")
    OmegaConf.resolve(config)
    return OmegaConf.to_yaml(config)


def main(argv: Sequence[str]) -> int:
    """``python -m <package>.config [--check] [params.yaml]``: write, or check, params.yaml."""
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    target = Path(paths[0] if paths else "params.yaml")
    expected = params_yaml()
    if not check:
        target.write_text(expected, encoding="utf-8")
        print(f"wrote {target}")
        return 0
    if not target.exists() or target.read_text(encoding="utf-8") != expected:
        print(
            f"{target} does not match the composed configs/ (it is what DVC runs with): "
            "run `make params` and commit it. It replaces the values of an experiment "
            "(`dvc exp run -S key=value`) with those of configs/: to keep them, write them "
            "into configs/ first.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
