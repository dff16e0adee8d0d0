"""The generated project's pre-commit hooks pass on a fresh render, without the network."""

from __future__ import annotations

import shutil

import pytest

from .conftest import COMBINATION_PARAMS, run
from .matrix import package_name


def precommit_on_a_fresh_repository(rendered, tmp_path):
    """What `make setup` leaves: a git repository (and params.yaml with DVC), then the hooks."""
    project = tmp_path / "project"
    shutil.copytree(rendered.path, project)
    # The package is importable as after `make setup`'s editable install.
    env = {"PYTHONPATH": str(project / "src"), "PRE_COMMIT_HOME": str(tmp_path / "pc-home")}
    if rendered.answers["use_dvc"]:
        module = f"{package_name(rendered.answers)}.config"
        run(["python", "-m", module, "params.yaml"], cwd=project, **env)
    run(["git", "init", "--quiet"], cwd=project)
    run(["git", "add", "--all"], cwd=project)
    return (
        project,
        env,
        run(["pre-commit", "run", "--all-files", "--show-diff-on-failure"], cwd=project, **env),
    )


def test_precommit_passes_on_the_default_render(default_project, tmp_path):
    _, _, proc = precommit_on_a_fresh_repository(default_project, tmp_path)
    # Every hook ran (none was skipped for lack of files) and passed.
    passed = {line.split(".")[0] for line in proc.stdout.splitlines() if line.endswith("Passed")}
    hooks = {"ruff check", "ruff format", "trim trailing whitespace", "check yaml", "check toml"}
    assert hooks | {"params"} <= passed, proc.stdout


@pytest.mark.parametrize("answers", COMBINATION_PARAMS[-1:])
def test_precommit_passes_on_the_leanest_render(render, answers, tmp_path):
    precommit_on_a_fresh_repository(render(answers), tmp_path)


def test_precommit_hooks_catch_a_problem(default_project, tmp_path):
    # The hooks are real checks: a lint error, and a config edited without `make params`.
    project, env, _ = precommit_on_a_fresh_repository(default_project, tmp_path)
    (project / "src" / "my_dl_project" / "broken.py").write_text("import os   \n")
    config = project / "configs" / "train.yaml"
    config.write_text(config.read_text().replace("seed: 42", "seed: 7"))
    run(["git", "add", "--all"], cwd=project)
    with pytest.raises(pytest.fail.Exception, match="ruff check") as failure:
        run(["pre-commit", "run", "--all-files"], cwd=project, **env)
    assert "does not match the composed configs/" in str(failure.value)
