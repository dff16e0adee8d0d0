"""The generated project's pre-commit hooks pass on a fresh render, without the network."""

from __future__ import annotations

import shutil

import pytest

from .conftest import COMBINATION_PARAMS, run


def precommit_on_a_fresh_repository(source, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(source, project)
    run(["git", "init", "--quiet"], cwd=project)
    run(["git", "add", "--all"], cwd=project)
    return run(
        ["pre-commit", "run", "--all-files", "--show-diff-on-failure"],
        cwd=project,
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
    )


def test_precommit_passes_on_the_default_render(default_project, tmp_path):
    proc = precommit_on_a_fresh_repository(default_project.path, tmp_path)
    # Every hook ran (none was skipped for lack of files) and passed.
    for hook in [
        "ruff check",
        "ruff format",
        "trim trailing whitespace",
        "check yaml",
        "check toml",
    ]:
        assert any(
            line.startswith(hook) and line.endswith("Passed") for line in proc.stdout.splitlines()
        ), f"hook {hook!r} did not pass:\n{proc.stdout}"


@pytest.mark.parametrize("answers", COMBINATION_PARAMS[-1:])
def test_precommit_passes_on_the_leanest_render(render, answers, tmp_path):
    precommit_on_a_fresh_repository(render(answers).path, tmp_path)


def test_precommit_hooks_catch_a_problem(default_project, tmp_path):
    # The hooks are real checks: a file with trailing whitespace and a lint error fails them.
    project = tmp_path / "broken"
    shutil.copytree(default_project.path, project)
    (project / "src" / "my_dl_project" / "broken.py").write_text("import os   \n")
    run(["git", "init", "--quiet"], cwd=project)
    run(["git", "add", "--all"], cwd=project)
    with pytest.raises(pytest.fail.Exception, match="ruff check"):
        run(
            ["pre-commit", "run", "--all-files"],
            cwd=project,
            PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        )
