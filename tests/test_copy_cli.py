"""The user's path: `copier copy` from the repository, then the generated project's own set-up.

These tests run the copier command line on this git repository (by absolute path, without
--trust), and then `make setup` in the render, which builds a fresh virtual environment: the only
tests that prove a generated project installs on its own.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import TEMPLATE_ROOT, VENV_BIN, run, tool_env

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


# The test's lock resolves as of fixed dates (uv's exclude-newer), so that it is the same on
# whichever day the test runs: torch as of a day its newest release was 2.13.0, the release whose
# CPU build this machine's package index holds (constraints.txt); the rest as of a day close to
# the test environment's own versions (mypy and the libraries it reads the types of).
UV_SETTINGS = """exclude-newer = "2026-11-30T00:00:00Z"
exclude-newer-package = { torch = "2026-08-15T00:00:00Z" }
"""


def torch_wheels(folder: Path) -> Path:
    """A folder holding this environment's torch as a wheel, found where pip found it."""
    version = importlib.metadata.version("torch")
    pip = [str(VENV_BIN / "python"), "-m", "pip", "download", "--no-deps", "--quiet"]
    run([*pip, "--dest", str(folder), f"torch=={version}"], cwd=folder.parent)
    return folder


@pytest.mark.slow
def test_make_setup_installs_the_locked_environment_that_lints_and_tests_clean(
    cli_render, tmp_path
):
    destination, _ = cli_render
    # A fresh venv from the base interpreter, not this one: nothing leaks in from the test env.
    base_python = getattr(sys, "_base_executable", sys.executable)
    uv_settings = tmp_path / "uv.toml"
    uv_settings.write_text(UV_SETTINGS)
    env = {
        "PIP_CONSTRAINT": str(CONSTRAINTS),
        "PIP_PROGRESS_BAR": "off",
        "UV_CONFIG_FILE": str(uv_settings),
        # torch's CPU build from a folder (scripts/install_locked.sh): the CPU index is not
        # reachable here, this machine's wheel is.
        "TORCH_WHEELS": str(torch_wheels(tmp_path / "wheels")),
    }
    setup = ["make", "setup", f"PYTHON={base_python}", "TORCH=cpu"]
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

    # The first `make setup` wrote uv.lock and `make init` committed it; the environment is the
    # lock's, package for package, with torch's CPU build of the locked version and none of the
    # CUDA build's NVIDIA libraries.
    tracked = run(["git", "ls-files", "uv.lock"], cwd=destination).stdout.split()
    assert tracked == ["uv.lock"]
    # A package may be locked at several versions, one per range of Python versions (markers).
    locked: dict[str, set[str]] = {}
    for package in tomllib.loads((destination / "uv.lock").read_text())["package"]:
        locked.setdefault(package["name"], set()).add(package["version"])
    listing = run(["uv", "pip", "list", "--format", "json", "--python", str(venv / "python")],
                  cwd=destination, bin_dir=venv)  # fmt: skip
    installed = {p["name"]: p["version"] for p in json.loads(listing.stdout)}
    assert locked["torch"] == {"2.13.0"} and installed["torch"] == "2.13.0+cpu"
    assert not [name for name in installed if name.startswith(("nvidia-", "cuda-", "triton"))]
    differing = {
        name: (version, locked.get(name))
        for name, version in installed.items()
        if name not in {"torch", "my-dl-project", "pip"} and version not in locked.get(name, ())
    }
    assert differing == {}, "installed versions that are not the locked ones"
    assert {"mypy", "pytest-cov", "uv", "ruff"} <= set(installed)

    # The drift check CI runs: clean now; a dependency edited without `make lock` fails it, with
    # uv's message, offline.
    run(["make", "lock-check"], cwd=destination, **env)
    pyproject = destination / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text(original.replace('  "tqdm>=4.66",\n', ""))
    try:
        drift = subprocess.run(
            ["make", "lock-check"], cwd=destination, capture_output=True, text=True,
            env=tool_env(**env, UV_OFFLINE="1"),
        )  # fmt: skip
    finally:
        pyproject.write_text(original)
    assert drift.returncode != 0
    assert "uv.lock` needs to be updated" in drift.stderr, drift.stderr

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
    # ... with the package's coverage, the entry points the tests start as processes included.
    total = re.search(r"^TOTAL +\d+ +\d+ +(\d+)%$", proc.stdout, re.MULTILINE)
    assert total and 0 < int(total.group(1)) <= 100, proc.stdout
    assert not re.search(r"^src/\S+/predict\.py +\d+ +\d+ +0%", proc.stdout, re.MULTILINE)
    dry = run(["make", "-n", "test-all"], cwd=destination).stdout
    assert dry.strip() == "python -m pytest --cov --cov-report=term --cov-report=xml", dry
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


# A lock with what matters to the installer: torch, two packages only its CUDA build needs, and
# one every build needs.
FAKE_LOCK = """version = 1

[[package]]
name = "numpy"
version = "2.3.5"

[[package]]
name = "nvidia-cublas-cu12"
version = "12.8.4.1"

[[package]]
name = "torch"
version = "2.9.1"

[[package]]
name = "triton"
version = "3.5.1"
"""


def install_calls(project, tmp_path, *make_args: str, lock: bool = True, **env: str) -> list[str]:
    """The uv and python commands `make install` runs, recorded by stand-ins in the venv; a
    stand-in `uv lock` writes FAKE_LOCK."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.txt"
    fake_lock = tmp_path / "fake.lock"
    fake_lock.write_text(FAKE_LOCK)
    if lock:
        shutil.copy(fake_lock, project / "uv.lock")
    for tool in ("python", "uv"):
        stand_in = venv / "bin" / tool
        stand_in.write_text(
            f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n'
            f'if [ "$1" = lock ]; then cp "{fake_lock}" uv.lock; fi\n'
        )
        stand_in.chmod(0o755)
    run(["make", "install", f"VENV={venv}", *make_args], cwd=project, **env)
    return [line.replace(str(venv), "VENV") for line in log.read_text().splitlines()]


def locked_install(*no_emit: str, torch: str = "") -> list[str]:
    """What install_locked.sh runs: export the lock (less `no_emit`), install it hash-checked,
    torch from `torch` (pip options) if given, then the project."""
    skipped = "".join(f" --no-emit-package {name}" for name in no_emit)
    export = "uv export --frozen --quiet --format requirements.txt --no-emit-project --extra dev"
    pip = "uv pip install --python VENV/bin/python"
    calls = [
        f"{export}{skipped} --output-file VENV/requirements.lock.txt",
        f"{pip} --require-hashes --no-deps --requirement VENV/requirements.lock.txt",
    ]
    if torch:
        calls.append(f"{pip} --no-deps {torch} torch==2.9.1")
    return [*calls, f"{pip} --no-deps --editable ."]


CUDA_ONLY = ("torch", "nvidia-cublas-cu12", "triton")


@pytest.fixture
def project_copy(default_project, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(default_project.path, project)
    return project


def test_make_install_takes_the_cpu_build_of_the_locked_torch_without_a_driver(
    project_copy, tmp_path
):
    no_driver = str(tmp_path / "no-such-nvidia-smi")
    calls = install_calls(project_copy, tmp_path, NVIDIA_SMI=no_driver)
    # Every locked package but torch and its CUDA libraries, then the same torch version from the
    # CPU index (--index-url, not --extra-index-url, which could still take PyPI's CUDA build).
    assert calls == locked_install(*CUDA_ONLY, torch=f"--index-url {CPU_INDEX}")


@pytest.mark.parametrize("choice", ["auto", "default"])
def test_make_install_takes_the_lock_as_it_is_with_a_driver_or_when_asked(
    project_copy, tmp_path, choice
):
    driver = fake_nvidia_smi(tmp_path, 0) if choice == "auto" else str(tmp_path / "none")
    calls = install_calls(project_copy, tmp_path, f"TORCH={choice}", NVIDIA_SMI=driver)
    assert calls == locked_install()


def test_make_install_takes_torch_from_a_folder_of_wheels_when_told(project_copy, tmp_path):
    wheels = tmp_path / "wheels"
    calls = install_calls(project_copy, tmp_path, "TORCH=cpu", TORCH_WHEELS=str(wheels))
    assert calls == locked_install(*CUDA_ONLY, torch=f"--no-index --find-links {wheels}")


def test_the_first_make_install_writes_the_lock(project_copy, tmp_path):
    assert not (project_copy / "uv.lock").exists()  # a fresh render has none
    calls = install_calls(project_copy, tmp_path, "TORCH=default", lock=False)
    assert calls == ["uv lock", *locked_install()]
    assert (project_copy / "uv.lock").read_text() == FAKE_LOCK


def test_make_install_stops_on_an_unknown_torch_build(project_copy, tmp_path):
    with pytest.raises(pytest.fail.Exception, match="TORCH=cuda is not a PyTorch build"):
        install_calls(project_copy, tmp_path, "TORCH=cuda")


def test_the_locked_install_refuses_a_missing_lock_with_what_to_run(project_copy):
    proc = subprocess.run(
        ["sh", "scripts/install_locked.sh", "cpu"], cwd=project_copy, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "uv.lock is missing" in proc.stderr and "make lock" in proc.stderr
