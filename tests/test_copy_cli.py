"""The user's path: `copier copy` from the repository, then the generated project's own set-up.

These tests run the copier command line on this git repository (by absolute path, without
--trust), and then `make setup` in the render, which builds a fresh virtual environment: the only
tests that prove a generated project installs on its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from .conftest import TEMPLATE_ROOT, VENV_BIN, run

CONSTRAINTS = TEMPLATE_ROOT / "constraints.txt"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


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
        "lock",
        "lock-check",
        "lint",
        "typecheck",
        "format",
        "test",
        "test-all",
        "prepare",
        "validate",
        "train",
        "tune",
        "cv",
        "evaluate",
        "predict",
        "export",
        "serve",
        "loadtest",
        "monitor",
        "routine",
        "params",
        "repro",
        "mlflow-ui",
        "mlflow-server",
        "docker-build",
        "docker-train",
        "docker-serve",
        "clean",
    }


@pytest.mark.slow
def test_make_setup_installs_a_project_that_lints_and_tests_clean(cli_render):
    destination, _ = cli_render
    # A fresh venv from the base interpreter, not this one: nothing leaks in from the test env.
    base_python = getattr(sys, "_base_executable", sys.executable)
    env = {"PIP_CONSTRAINT": str(CONSTRAINTS), "PIP_PROGRESS_BAR": "off"}
    # TORCH=default: the constrained torch comes from this machine's package index (the build
    # choice itself is tested below, without installing anything).
    setup = ["make", "setup", f"PYTHON={base_python}", "TORCH=default"]
    run(setup, cwd=destination, timeout=900, **env)
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
    # test_generated_slow.py runs once per task with the same pytest command. The fast set
    # itself runs in the matrix (test_render_matrix.py); here, in the project's own
    # environment, a few of its tests: collecting every test file imports the package's modules
    # and the test dependencies, so a dependency missing from pyproject.toml still fails here.
    proc = run(["make", "test", "ARGS=-k 'config_schema or layers or predict'"], cwd=destination)
    assert re.search(r"\d+ passed, .*\d+ deselected", proc.stdout), proc.stdout
    dry = run(["make", "-n", "test-all"], cwd=destination).stdout
    assert dry.strip() == "python -m pytest", dry
    # The pipeline, offline, with the project's own DVC; a second run has nothing to do.
    first = run(["make", "repro"], cwd=destination)
    assert "Running stage 'validate'" in first.stdout
    second = run(["make", "repro"], cwd=destination)
    assert "Data and pipelines are up to date" in second.stdout


# --- which build of torch `make install` takes ---------------------------------------------------


def fake_nvidia_smi(tmp_path, exit_code: int) -> str:
    """An `nvidia-smi` that answers as a machine with (0) or without (non-zero) a driver."""
    probe = tmp_path / f"nvidia-smi-{exit_code}"
    probe.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    probe.chmod(0o755)
    return str(probe)


@pytest.mark.parametrize(
    ("torch", "driver", "index"),
    [
        ("auto", "answers", ""),  # PyPI's default build (CUDA on Linux)
        ("auto", "fails", CPU_INDEX),  # nvidia-smi there, but no driver loaded
        ("auto", "absent", CPU_INDEX),
        (None, "absent", CPU_INDEX),  # no argument means auto
        ("cpu", "answers", CPU_INDEX),  # the user's choice wins over the machine
        ("cu128", "absent", "https://download.pytorch.org/whl/cu128"),
        ("rocm6.4", "absent", "https://download.pytorch.org/whl/rocm6.4"),
        ("default", "absent", ""),
    ],
)
def test_torch_index_follows_the_driver_unless_the_user_chooses(
    default_project, tmp_path, torch, driver, index
):
    exit_code = {"answers": 0, "fails": 9}.get(driver)
    probe = str(tmp_path / "absent") if exit_code is None else fake_nvidia_smi(tmp_path, exit_code)
    args = [] if torch is None else [torch]
    proc = run(["sh", "scripts/torch_index.sh", *args], cwd=default_project.path, NVIDIA_SMI=probe)
    assert proc.stdout.strip() == index


def test_torch_index_refuses_an_unknown_build_with_the_choices(default_project):
    proc = subprocess.run(
        ["sh", "scripts/torch_index.sh", "cuda"],
        cwd=default_project.path, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert "TORCH=cuda" in proc.stderr and "cu128" in proc.stderr and "default" in proc.stderr


def pip_calls_of_make_install(project, tmp_path, *make_args: str, **env: str) -> list[str]:
    """The pip commands `make install` runs, recorded by a stand-in for the venv's python."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "pip-calls.txt"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    python.chmod(0o755)
    run(["make", "install", f"VENV={venv}", *make_args], cwd=project, **env)
    return log.read_text().splitlines()


def test_make_install_takes_the_cpu_build_of_torch_without_a_driver(default_project, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(default_project.path, project)
    no_driver = str(tmp_path / "no-such-nvidia-smi")
    calls = pip_calls_of_make_install(project, tmp_path, NVIDIA_SMI=no_driver)
    # torch alone from the CPU index first (--index-url, not --extra-index-url), then the project.
    assert calls == [
        "-m pip install --quiet --upgrade pip",
        f"-m pip install --quiet --index-url {CPU_INDEX} torch",
        "-m pip install --quiet -e .[dev]",
    ]


@pytest.mark.parametrize("choice", ["auto", "default"])
def test_make_install_takes_pypis_torch_with_a_driver_or_when_asked(
    default_project, tmp_path, choice
):
    project = tmp_path / "project"
    shutil.copytree(default_project.path, project)
    driver = fake_nvidia_smi(tmp_path, 0) if choice == "auto" else str(tmp_path / "none")
    calls = pip_calls_of_make_install(project, tmp_path, f"TORCH={choice}", NVIDIA_SMI=driver)
    assert calls == ["-m pip install --quiet --upgrade pip", "-m pip install --quiet -e .[dev]"]


def test_make_install_stops_on_an_unknown_torch_build(default_project, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(default_project.path, project)
    with pytest.raises(pytest.fail.Exception, match="TORCH=cuda is not a PyTorch build"):
        pip_calls_of_make_install(project, tmp_path, "TORCH=cuda")
