"""What every tracked run records about where it came from: code, environment, parameters.

Plain functions with no tracker in them, so they are tested without one and any tracker can
use them.
"""

import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

# Masking lives in the package's foundation (``masking.py``), kept importable from here.
from ..masking import MASK, is_secret_key, mask_config, mask_secrets, mask_text

__all__ = [
    "MASK",
    "environment",
    "flatten",
    "git_state",
    "installed_packages",
    "is_secret_key",
    "mask_config",
    "mask_secrets",
    "mask_text",
]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values (``[1, 2]``)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def git_state(cwd: str = ".") -> dict[str, str]:
    """The commit and whether the working tree had uncommitted changes ("unknown" outside git)."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git.commit": commit, "git.dirty": str(bool(status)).lower()}


def environment() -> dict[str, str]:
    """Python, torch and CUDA versions and the machine, as tags."""
    import torch

    cuda = torch.version.cuda if torch.cuda.is_available() else "none"
    return {
        "env.python": platform.python_version(),
        "env.torch": torch.__version__,
        "env.cuda": str(cuda),
        "env.platform": platform.platform(),
        "env.executable": sys.executable,
    }


def installed_packages() -> str:
    """``name==version`` for every installed distribution: the run's pip freeze."""
    lines = {
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }
    return "\n".join(sorted(lines, key=str.lower)) + "\n"
