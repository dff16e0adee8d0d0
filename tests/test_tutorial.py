"""docs/tutorial.md works: every ```bash block of it runs, in order, against a fresh render.

The blocks are joined into one bash script (`set -euo pipefail`), so a `cd` or a variable carries
over from one block to the next as in the reader's terminal. The test changes exactly what
SUBSTITUTIONS lists, and nothing else (docs/contributing.md describes the convention):

- the template comes from a temporary git repository of the template as it is on disk, tagged
  0.1.0 (as in test_update.py), instead of the published one;
- nothing is installed: copier is already in this environment, and `make setup` (which
  pip-installs the project, slow and online) becomes `make init`, with VENV pointing the
  generated Makefile at this environment (it holds every generated dependency) and PYTHONPATH=src
  standing in for the editable install;
- the project's python, `.venv/bin/python`, becomes `python`: there is no `.venv` (see above),
  and this environment is first on PATH;
- before the first block that runs `copier check-update`, the temporary template publishes
  release 0.2.0 (one line added to the generated README), so that the update has something to
  bring.

Blocks fenced as anything else (```text, ```yaml, ```python) are not run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import TEMPLATE_ROOT, VENV_BIN, tool_env
from .test_update import new_template_repo

TUTORIAL = TEMPLATE_ROOT / "docs" / "tutorial.md"
# Where the tutorial says the template is published.
TEMPLATE_URL = "gh:copier-deep-learning/copier-deep-learning"
# What the test runs instead of what the page says: (as written, as run).
SUBSTITUTIONS = [
    ("pip install copier", "copier --version"),
    (TEMPLATE_URL, '"$TUTORIAL_TEMPLATE"'),
    ("make setup", "make init"),
    (".venv/bin/python", "python"),
]
RELEASE_LINE = "Updated by the template's release 0.2.0 (tests/test_tutorial.py)."
RELEASE = f"""\
# --- tests/test_tutorial.py: the template publishes release 0.2.0 ---
( cd "$TUTORIAL_TEMPLATE" \\
  && printf '\\n%s\\n' "{RELEASE_LINE}" >> template/README.md.jinja \\
  && git add -A && git commit -q -m "release 0.2.0" && git tag 0.2.0 )
"""
FENCE = re.compile(r"^```bash\n(.*?)^```$", flags=re.MULTILINE | re.DOTALL)


def bash_blocks(text: str) -> list[tuple[int, str]]:
    """The ```bash blocks of a Markdown page with the line each starts on."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def tutorial_script(text: str) -> str:
    blocks = bash_blocks(text)
    joined = "\n".join(block for _, block in blocks)
    for written, _ in SUBSTITUTIONS:
        assert written in joined, f"docs/tutorial.md no longer runs `{written}`: update the test"
    lines = ["set -euo pipefail"]
    released = False
    for line_number, block in blocks:
        for written, substitute in SUBSTITUTIONS:
            block = block.replace(written, substitute)
        if not released and "copier check-update" in block:
            lines.append(RELEASE)
            released = True
        lines.append(f'echo "### docs/tutorial.md block at line {line_number}" >&2')
        lines.append(block)
    assert released, "docs/tutorial.md no longer runs `copier check-update`: update the test"
    return "\n".join(lines) + "\n"


def test_tutorial_blocks_are_found():
    blocks = bash_blocks(TUTORIAL.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    script = tutorial_script(TUTORIAL.read_text(encoding="utf-8"))
    assert TEMPLATE_URL not in script and "make setup" not in script


@pytest.mark.slow
def test_every_bash_block_of_the_tutorial_runs(tmp_path: Path):
    template = new_template_repo(tmp_path / "template")
    workdir = tmp_path / "reader"
    workdir.mkdir()
    script = tutorial_script(TUTORIAL.read_text(encoding="utf-8"))
    (tmp_path / "tutorial.sh").write_text(script, encoding="utf-8")
    env = tool_env(
        TUTORIAL_TEMPLATE=str(template),
        VENV=str(VENV_BIN.parent),
        PYTHONPATH="src",
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        ["bash", "-x", str(tmp_path / "tutorial.sh")],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(
            f"the tutorial failed (exit {proc.returncode}); the last block started is named "
            f"in the output\n--- stdout ---\n{proc.stdout[-4000:]}\n"
            f"--- stderr ---\n{proc.stderr[-8000:]}"
        )

    project = workdir / "my-project"
    # Trained, evaluated, tracked ...
    assert (project / "outputs" / "first" / "checkpoints" / "best.pt").is_file()
    assert (project / "reports" / "evaluation.md").is_file()
    assert "metrics.evaluation/test/accuracy" in proc.stdout
    # ... and updated to the new release, committed, nothing left over.
    assert "_commit: 0.2.0" in (project / ".copier-answers.yml").read_text()
    assert RELEASE_LINE in (project / "README.md").read_text()
    git = ["git", "-C", str(project)]
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""
    log = subprocess.run([*git, "log", "--format=%s"], capture_output=True, text=True)
    assert log.stdout.splitlines()[0] == "Update from copier-deep-learning"
