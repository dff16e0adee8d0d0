"""The layout the README promises is the layout on disk."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_path_the_readme_lists_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # The layout table's first column holds paths in backticks: | `src/pkg/data/` | ... |
    listed = re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE)
    assert listed, "the README has no layout table"
    missing = [path for path in listed if not (ROOT / path).exists()]
    assert not missing, f"the README lists paths that do not exist: {missing}"
