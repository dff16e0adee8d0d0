"""Tests must not depend on where the temporary folder is, nor on how long its name is.

A message hard-wrapped at a fixed width once split a checkpoint's path from "does not exist" only
where pytest's temporary folders had long names, so CI passed or failed by chance. Here the
generated project's fast tests run once more under a temporary folder of the *other* length than
this session's: a long one (over 120 characters) on a machine whose folder is short, a short one
where it is long (`.ci/run` gives the whole suite a long one, so CI checks both).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from .conftest import assert_untouched, project_state, run

LONG = 120  # characters of the long temporary folder's path


def long_folder(base: Path) -> Path:
    """A new folder under ``base`` whose path is at least LONG characters long."""
    folder = base / "a-temporary-folder-with-a-long-name"
    while len(str(folder)) < LONG:
        folder = folder / "a-temporary-folder-with-a-long-name"
    folder.mkdir(parents=True)
    return folder


def test_the_long_folder_is_long_and_the_short_one_short(tmp_path):
    assert len(str(long_folder(tmp_path))) >= LONG
    short = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    try:
        assert len(str(short)) < 20
    finally:
        short.rmdir()


@pytest.mark.slow
@pytest.mark.xdist_group("img-dvc1-mlf1-dkr1-ci-github")  # the default render's worker
def test_generated_fast_tests_pass_under_a_temporary_folder_of_the_other_length(
    default_project, tmp_path
):
    current = len(tempfile.gettempdir())
    if current >= LONG:
        other = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    else:
        other = long_folder(tmp_path)
    try:
        before = project_state(default_project.path)
        cmd = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
        proc = run(cmd, cwd=default_project.path, TMPDIR=str(other))
        assert re.search(r"\d+ passed", proc.stdout), proc.stdout
        assert_untouched(before, default_project.path)
        # The run really used that folder: pytest made its base folder inside it.
        assert any(other.rglob("pytest-of-*")), list(other.iterdir())
    finally:
        shutil.rmtree(other, ignore_errors=True)
