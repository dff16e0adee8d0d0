"""Shared fixtures: render the template once per answer combination and session.

Renders come from a snapshot of the template's working tree (copier.yml, includes/, template/)
taken once per session: copier then reads a plain folder, which is faster than cloning this git
repository for every render and always tests the files as they are on disk. The copy from the
repository itself, as a user runs it, is tested in test_copy_cli.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier
import pytest

from .matrix import DEFAULTS, combination_id, combinations

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_FILES = ["copier.yml", "includes", "template"]
VENV_BIN = Path(sys.executable).parent

# Commits made by the tests need an identity, and CI runs as root with no git config.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def tool_env(bin_dir: Path = VENV_BIN, **extra: str) -> dict[str, str]:
    """The environment for tools run on a rendered project: `bin_dir` (this venv) first on PATH."""
    env = {**os.environ, **GIT_IDENTITY, **extra}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if "PYTEST_XDIST_WORKER" in os.environ:
        # Each xdist worker has a core: torch's thread pools fighting over both slow tests ~5x.
        env.setdefault("OMP_NUM_THREADS", "1")
    # Run tools as a user would: not inside this venv, not as a sub-make of `make test`.
    for inherited in ["VIRTUAL_ENV", "MAKELEVEL", "MAKEFLAGS", "MFLAGS"]:
        env.pop(inherited, None)
    return env


def run(
    cmd: list[str], cwd: Path, timeout: float = 600, bin_dir: Path = VENV_BIN, **env: str
) -> subprocess.CompletedProcess:
    """Run a command in a rendered project; fail the test with its output if it fails."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=tool_env(bin_dir, **env), capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` exited {proc.returncode} in {cwd}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


# Caches that tools may leave in a project; everything else a test run writes there is a leak.
CACHES = {"__pycache__", ".ruff_cache", ".pytest_cache"}


def project_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of a project (not .git/ nor caches) with its size and modification time."""
    state = {}
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if parts[0] == ".git" or CACHES.intersection(parts) or not path.is_file():
            continue
        stat = path.stat()
        state[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return state


def assert_untouched(before: dict[str, tuple[int, int]], root: Path) -> None:
    """The project's own tests are hermetic: they wrote, changed and removed nothing in it."""
    after = project_state(root)
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert not (added or removed or changed), (
        f"the project's tests touched the project: added {added[:10]}, removed {removed[:10]}, "
        f"changed {changed[:10]}"
    )


@dataclass(frozen=True)
class Rendered:
    answers: dict[str, Any]
    path: Path
    files: frozenset[str]  # the files right after rendering, before any tool ran there


def list_files(root: Path) -> frozenset[str]:
    return frozenset(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def template_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    snapshot = tmp_path_factory.mktemp("template")
    for name in TEMPLATE_FILES:
        source = TEMPLATE_ROOT / name
        if source.is_dir():
            caches = shutil.ignore_patterns("__pycache__", "*.pyc", ".ruff_cache", ".pytest_cache")
            shutil.copytree(source, snapshot / name, ignore=caches)
        else:
            shutil.copy2(source, snapshot / name)
    return snapshot


def render_project(template: Path, destination: Path, answers: dict[str, Any]) -> Rendered:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier's own notices (e.g. no git tags)
        copier.run_copy(
            str(template), destination, data=answers, defaults=True, quiet=True, unsafe=False
        )
    return Rendered(answers=answers, path=destination, files=list_files(destination))


@pytest.fixture(scope="session")
def render(template_snapshot: Path, tmp_path_factory: pytest.TempPathFactory):
    """Render answers (merged over the defaults), once per session and combination."""
    cache: dict[str, Rendered] = {}

    def _render(answers: dict[str, Any]) -> Rendered:
        merged = {**DEFAULTS, **answers}
        if "package_name" not in answers and "project_name" in answers:
            merged.pop("package_name")  # let the template derive it
        key = repr(sorted(merged.items()))
        if key not in cache:
            destination = tmp_path_factory.mktemp("render") / "project"
            cache[key] = render_project(template_snapshot, destination, merged)
        return cache[key]

    return _render


COMBINATIONS = combinations()
COMBINATION_PARAMS = [
    pytest.param(c, id=combination_id(c), marks=pytest.mark.xdist_group(combination_id(c)))
    for c in COMBINATIONS
]


@pytest.fixture
def default_project(render) -> Rendered:
    return render({})
