"""The generated Dockerfile and .dockerignore, tested without a Docker engine (none runs here).

What is checked: hadolint is clean for both bases; the final stage runs as a non-root user; the
build context holds exactly what the Dockerfile copies (no data, runs, tracking stores, secrets
or caches). What is not: building the image and training in it (see docs/delivery.md).
"""

from __future__ import annotations

import fnmatch
import re

import pytest

from .conftest import VENV_BIN, run

BASES = ["cpu", "cuda"]


@pytest.fixture(params=BASES)
def docker_project(request, render):
    return render({"use_docker": True, "docker_base": request.param})


def test_dockerfile_passes_hadolint(docker_project):
    run(
        [str(VENV_BIN / "hadolint"), "--failure-threshold", "info", "Dockerfile"],
        docker_project.path,
    )


def final_stage(dockerfile: str) -> list[str]:
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.startswith("FROM "))
    return instructions[last_from:]


def test_the_image_runs_as_a_non_root_user(docker_project):
    stage = final_stage((docker_project.path / "Dockerfile").read_text())
    users = [line.split()[1] for line in stage if line.startswith("USER ")]
    assert users, "the final stage never switches user: it would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(line.startswith("RUN useradd") for line in stage)


def test_the_base_follows_the_answer(render):
    cpu = (render({"docker_base": "cpu"}).path / "Dockerfile").read_text()
    cuda = (render({"docker_base": "cuda"}).path / "Dockerfile").read_text()
    assert "python:3.11-slim" in cpu and "download.pytorch.org/whl/cpu" in cpu
    assert "nvidia/cuda:" in cuda and "whl/cpu" not in cuda


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parent folders, wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").rstrip("/")
        regex = fnmatch.translate(pattern).replace(".*/", "(.*/)?")  # `**/` matches no folder too
        if any(re.match(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_the_build_context_holds_only_what_the_image_needs(docker_project, tmp_path):
    root = docker_project.path
    patterns = [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # A project after some work: data, runs, a tracking store, secrets, caches.
    clutter = [
        "data/raw/digits/3/0001.png",
        "data/processed/train.parquet",
        "outputs/train/2026-01-01/checkpoints/last.pt",
        "multirun/0/metrics.json",
        "mlflow.db",
        "mlruns/0/meta.yaml",
        "mlartifacts/1/model.pt",
        ".env",
        ".git/config",
        ".venv/bin/python",
        ".dvc/cache/ab/cdef",
        "reports/evaluation.md",
        f"src/{docker_project.answers.get('package_name', 'my_dl_project')}/__pycache__/a.pyc",
        "notebooks/explore.ipynb",
    ]
    files = sorted(set(docker_project.files) | set(clutter))
    sent = {f for f in files if not dockerignore_excludes(patterns, f)}
    assert not sent & set(clutter), f"the context would include {sorted(sent & set(clutter))}"
    # Everything the Dockerfile copies from the context is in it.
    dockerfile = (root / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(?:--chown=\S+ )?(.+) \S+$", dockerfile, re.MULTILINE)
    for source in " ".join(copied).split():
        assert any(f == source or f.startswith(source.rstrip("/") + "/") for f in sent), source
    top_level = {"pyproject.toml", "README.md", "LICENSE"}
    needed = {
        f for f in docker_project.files if f in top_level or f.split("/")[0] in {"src", "configs"}
    }
    assert sent == needed


def test_the_ignore_matcher_follows_docker_semantics():
    patterns = ["*", "!src/", "**/__pycache__"]
    assert dockerignore_excludes(patterns, "data/x.parquet")
    assert not dockerignore_excludes(patterns, "src/pkg/a.py")
    assert dockerignore_excludes(patterns, "src/pkg/__pycache__/a.pyc")
