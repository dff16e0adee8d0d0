"""Tests must not depend on where the temporary folder is, nor on how long its name is.

A message hard-wrapped at a fixed width once split a checkpoint's path from "does not exist" only
where pytest's temporary folders had long names, so CI passed or failed by chance. Here the
generated project's fast tests that build paths under the temporary folder run once more under a
temporary folder of the *other* length than this session's: a long one (over 120 characters) on a
machine whose folder is short, a short one where it is long (`.ci/run` gives the whole suite a
long one, so CI checks both).

Not the whole fast set (the matrix runs all of it under this session's folder): only the files
whose tests turn a temporary path into something whose length matters (PATH_TESTS). What the
folder's length can break is a message naming a path (wrapped, cut, split from its words), a
folder or file name built below it (Hydra's run folders and logs, checkpoints, an SQLite store's
URI) and a socket or shared-memory name made in it (the data loader's workers); a test that never
sees the path (a model's shapes, a metric, a schema check naming a column) passes or fails alike
under any folder, so running it twice proves nothing more (and this is about half the fast set's
time).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from .conftest import assert_untouched, project_state, run

LONG = 120  # characters of the long temporary folder's path

# The generated test files whose tests put a temporary path where its length matters (a new test
# of that kind belongs in one of them, or its file here).
PATH_TESTS = [
    # messages naming a path: a missing checkpoint at two depths, the report's title, the store
    "tests/test_evaluation_entry.py",
    # train's messages naming a missing data folder; checkpoints, run folders; the data loader's
    # workers (their sockets live in the temporary folder)
    "tests/test_training.py",
    # Hydra's run folders and logs, a run's output folder and its resolved config
    "tests/test_tracking.py",
    # messages naming an unreadable split and a blocked output folder
    "tests/test_data_integrity.py",
    # a locked or unwritable run folder, named in the refusal
    "tests/test_interruptions.py",
    # the resend command naming the run folder, an SQLite store under the folder
    "tests/test_outages.py",
    # the consolidate command naming a sharded checkpoint's folder
    "tests/test_fsdp.py",
]


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
        # A file renamed away fails the run (pytest: "file or directory not found").
        proc = run([*cmd, *PATH_TESTS], cwd=default_project.path, TMPDIR=str(other))
        assert re.search(r"\d+ passed", proc.stdout), proc.stdout
        assert_untouched(before, default_project.path)
        # The run really used that folder: pytest made its base folder inside it.
        assert any(other.rglob("pytest-of-*")), list(other.iterdir())
    finally:
        shutil.rmtree(other, ignore_errors=True)
