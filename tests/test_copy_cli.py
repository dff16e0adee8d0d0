"""The user's path: `copier copy` from the repository, then the generated project's own set-up.

These tests run the copier command line on this git repository (by absolute path, without
--trust), and then `make setup` in the render, which builds a fresh virtual environment: the only
tests that prove a generated project installs on its own.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import TEMPLATE_ROOT, VENV_BIN, run

CONSTRAINTS = TEMPLATE_ROOT / "constraints.txt"


@pytest.fixture(scope="module")
def cli_render(tmp_path_factory):
    destination = tmp_path_factory.mktemp("cli") / "my-dl-project"
    proc = run(
        [
            str(VENV_BIN / "copier"),
            "copy",
            "--defaults",
            "--vcs-ref",
            "HEAD",
            str(TEMPLATE_ROOT),
            str(destination),
        ],
        cwd=destination.parent,
    )
    return destination, proc


def test_copy_needs_no_trust_and_prints_next_steps(cli_render):
    destination, proc = cli_render
    assert (destination / "pyproject.toml").is_file()
    assert "make setup" in proc.stderr + proc.stdout
    answers = (destination / ".copier-answers.yml").read_text()
    # An absolute source path, so that `copier update` can find the template again.
    assert f"_src_path: {TEMPLATE_ROOT}" in answers


def test_make_help_lists_the_targets(cli_render):
    destination, _ = cli_render
    proc = run(["make", "help"], cwd=destination)
    listed = {line.split()[0] for line in re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout).splitlines()}
    assert listed == {
        "help",
        "setup",
        "install",
        "init",
        "lint",
        "format",
        "test",
        "test-all",
        "prepare",
        "validate",
        "train",
        "tune",
        "evaluate",
        "predict",
        "export",
        "params",
        "repro",
        "mlflow-ui",
        "mlflow-server",
        "docker-build",
        "docker-train",
        "clean",
    }


@pytest.mark.slow
def test_make_setup_installs_a_project_that_lints_and_tests_clean(cli_render):
    destination, _ = cli_render
    # A fresh venv from the base interpreter, not this one: nothing leaks in from the test env.
    base_python = getattr(sys, "_base_executable", sys.executable)
    env = {"PIP_CONSTRAINT": str(CONSTRAINTS), "PIP_PROGRESS_BAR": "off"}
    run(["make", "setup", f"PYTHON={base_python}"], cwd=destination, timeout=900, **env)
    venv = destination / ".venv" / "bin"
    assert (venv / "python").exists()
    assert (destination / ".git" / "hooks" / "pre-commit").exists()
    assert (destination / ".dvc" / "config").exists()
    assert "analytics = false" in (destination / ".dvc" / "config").read_text()
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=destination, capture_output=True, text=True, check=True
    )
    assert "Initial commit" in log.stdout
    status = subprocess.run(
        ["git", "status", "--porcelain"],
        cwd=destination,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == "", f"make setup left uncommitted files:\n{status.stdout}"
    # The project's own tools, from its own environment.
    run(["make", "lint"], cwd=destination)
    run(["pre-commit", "run", "--all-files"], cwd=destination, bin_dir=venv)
    # `make test` is the fast set; `make test-all` (CI) adds the slow set, which
    # test_generated_slow.py runs once per task with the same pytest command.
    proc = run(["make", "test"], cwd=destination)
    assert re.search(r"\d+ passed, \d+ deselected", proc.stdout), proc.stdout
    dry = run(["make", "-n", "test-all"], cwd=destination).stdout
    assert dry.strip() == "python -m pytest", dry
    # The pipeline, offline, with the project's own DVC; a second run has nothing to do.
    first = run(["make", "repro"], cwd=destination)
    assert "Running stage 'validate'" in first.stdout
    second = run(["make", "repro"], cwd=destination)
    assert "Data and pipelines are up to date" in second.stdout
