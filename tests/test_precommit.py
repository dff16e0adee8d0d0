"""The generated project's pre-commit hooks pass on a fresh render, without the network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .conftest import COMBINATION_PARAMS, VENV_BIN, run
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


def test_precommit_leaves_the_files_dvc_writes_alone(default_project, tmp_path):
    """DVC's YAML dumper ends folded long lines with a space (dvc.lock after `dvc repro`)."""
    project, env, _ = precommit_on_a_fresh_repository(default_project, tmp_path)
    dvc_written = {
        "dvc.lock": "stages:\n  train:\n    cmd: python -m my_dl_project.train \n      x=1\n",
        "data/raw.dvc": "outs:\n- md5: 0123 \n  path: raw",  # and no newline at the end
    }
    for name, text in dvc_written.items():
        (project / name).write_text(text)
    run(["git", "add", "--all"], cwd=project)
    run(["pre-commit", "run", "--all-files"], cwd=project, **env)
    for name, text in dvc_written.items():
        assert (project / name).read_text() == text, f"a hook rewrote {name}"
    # Every other file is still checked.
    (project / "notes.txt").write_text("trailing \n")
    run(["git", "add", "--all"], cwd=project)
    with pytest.raises(pytest.fail.Exception, match="trailing-whitespace"):
        run(["pre-commit", "run", "--all-files"], cwd=project, **env)


def outside_the_environment(tmp_path: Path) -> dict[str, str]:
    """A PATH without the test environment's tools, as in a shell where .venv is not activated."""
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if d and Path(d) != VENV_BIN
    )
    if any(shutil.which(tool, path=path) for tool in ["ruff", "pre-commit", "dvc"]):
        pytest.skip("the project's tools are on PATH outside the test environment")
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": path, "bin_dir": empty}


def make_venv(project: Path) -> None:
    """A stand-in for `make setup`'s .venv: bin/ runs the test environment's tools."""
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in VENV_BIN.iterdir():
        if tool.is_file() and os.access(tool, os.X_OK):
            (bin_dir / tool.name).write_text(f'#!/bin/sh\nexec "{tool}" "$@"\n')
            (bin_dir / tool.name).chmod(0o755)


def commit(project: Path, message: str, **env) -> None:
    run(["git", "add", "--all"], cwd=project, **env)
    run(["git", "commit", "--quiet", "-m", message], cwd=project, **env)


def test_git_commit_runs_the_hooks_without_an_activated_environment(default_project, tmp_path):
    project, env, _ = precommit_on_a_fresh_repository(default_project, tmp_path)
    make_venv(project)
    run(["pre-commit", "install"], cwd=project, **env)
    shell = outside_the_environment(tmp_path)
    commit(project, "first", **env, **shell)
    # The hooks did run: a lint error stops the next commit.
    (project / "src" / "my_dl_project" / "broken.py").write_text("print(undefined)\n")
    with pytest.raises(pytest.fail.Exception, match="F821"):
        commit(project, "broken", **env, **shell)


def test_the_params_hook_accepts_an_experiment_and_checks_changed_configs(
    default_project, tmp_path
):
    project, env, _ = precommit_on_a_fresh_repository(default_project, tmp_path)
    run(["pre-commit", "install"], cwd=project, **env)
    commit(project, "first", **env)
    # What `dvc exp run -S data.val_fraction=0.2` leaves: params.yaml composed with the override.
    compose = (
        "from my_dl_project.config import params_yaml; import pathlib;"
        "pathlib.Path('params.yaml').write_text(params_yaml(['data.val_fraction=0.2']))"
    )
    run(["python", "-c", compose], cwd=project, **env)
    commit(project, "experiment: val_fraction 0.2", **env)
    # configs/ changed without `make params`: stopped, with what to do.
    config = project / "configs" / "train.yaml"
    config.write_text(config.read_text().replace("seed: 42", "seed: 7"))
    with pytest.raises(pytest.fail.Exception, match="make params") as failure:
        commit(project, "seed 7", **env)
    assert "dvc exp run" in str(failure.value)
    run(["make", "params", f"VENV={VENV_BIN.parent}"], cwd=project, **env)
    commit(project, "seed 7", **env)
