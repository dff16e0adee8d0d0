"""What every tracked run records about where it came from: code, environment, parameters.

Plain functions with no tracker in them, so they are tested without one and any tracker can
use them.
"""

import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

# What is a secret, in one place: every copy of the config that leaves the process (tracking
# params, checkpoints, Hydra's saved config, the run's log, error messages) goes through
# ``mask_secrets``, ``mask_config`` or ``mask_text`` below.
#
# 1. The value of a key named like a password, token or API key. Whole words of the key's last
#    part: "auth_token" is a secret, "tokenizer" is not.
SECRET_KEY = re.compile(
    r"(^|[_-])(pass(word|wd)?|secret|token|credentials?)([_-]|$)|api[_-]?key|access[_-]?key",
    re.IGNORECASE,
)
# 2. The password of a URL (``postgresql://user:pw@host/db``, ``http://user:pw@host:5000``), in
#    any string: ``user:***@host``. Up to the last "@" of the word: a password with a raw "/" or
#    "@" (which a URL should percent-encode) is masked whole, at worst with some of the host.
URL_PASSWORD = re.compile(
    r"(?P<user>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@'\"]*):(?P<password>[^\s'\"]+)@"
)
# 3. ``name=value`` in a string (a query string, a Hydra override, Hydra's override_dirname)
#    whose name is a secret key: ``?api_token=***``, ``+db.password=***``.
SECRET_ASSIGNMENT = re.compile(r"(?P<key>[\w.+~-]*\w)=(?P<value>[^\s,&;'\"]+)")
MASK = "***"


def is_secret_key(key: Any) -> bool:
    """Whether the value of ``key`` (dotted or not: its last part counts) must be masked."""
    return bool(SECRET_KEY.search(str(key).rsplit(".", 1)[-1]))


def mask_text(text: str) -> str:
    """``text`` with every URL password and every secret ``name=value`` masked."""
    text = URL_PASSWORD.sub(lambda m: f"{m['user']}:{MASK}@", text)
    return SECRET_ASSIGNMENT.sub(
        lambda m: f"{m['key']}={MASK}" if is_secret_key(m["key"].lstrip("+~")) else m[0], text
    )


def mask_config(tree: Any, secret: bool = False) -> Any:
    """A config (nested dicts and lists of plain values) with its secrets masked, as a copy.

    Every non-empty value under a secret key is replaced by ``***``; every other string is
    masked with ``mask_text``. Numbers, booleans, None and the structure are kept, so the result
    is still a valid config of the same shape.
    """
    if isinstance(tree, Mapping):
        return {k: mask_config(v, secret or is_secret_key(k)) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [mask_config(v, secret) for v in tree]
    if secret and tree not in (None, "", False):
        return MASK
    return mask_text(tree) if isinstance(tree, str) else tree


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


def mask_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """Flat parameters (``a.b.api_token``) with their secrets masked, as ``mask_config`` does."""
    return {key: mask_config(value, is_secret_key(key)) for key, value in params.items()}


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
