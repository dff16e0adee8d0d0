"""What is a secret, and masking it: every copy of the config or a message that leaves the process.

Tracking params, checkpoints, Hydra's saved config, the run's log and error messages go through
``mask_secrets``, ``mask_config`` or ``mask_text``. Part of the package's foundation (it imports
nothing of the package), so that ``errors.fail`` can mask the messages of every command.
"""

import re
from collections.abc import Mapping
from typing import Any

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


def mask_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """Flat parameters (``a.b.api_token``) with their secrets masked, as ``mask_config`` does."""
    return {key: mask_config(value, is_secret_key(key)) for key, value in params.items()}
