"""The generated Dockerfile and .dockerignore, tested without a Docker engine, and the image.

What is checked everywhere: hadolint is clean for both bases; the final stage runs as a non-root
user; the build context holds exactly what the Dockerfile copies (no data, runs, tracking
stores, secrets or caches). Where a Docker engine answers (`docker info`): the image builds and
its default command serves an exported model over HTTP (`/health`, `/predict`); elsewhere that
test is skipped with the reason. Training in the image is not tested (see docs/delivery.md).
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from .conftest import VENV_BIN, run
from .matrix import package_name

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
    # Both install the lock (scripts/install_locked.sh): the CPU image with torch's CPU build,
    # the CUDA one as locked (PyPI's CUDA build).
    installs = r"EXTRAS=\"\" EDITABLE=0 UV_NO_CACHE=1 sh scripts/install_locked.sh (\w+)$"
    assert "python:3.11-slim" in cpu and re.search(installs, cpu, re.M).group(1) == "cpu"
    assert "nvidia/cuda:" in cuda and re.search(installs, cuda, re.M).group(1) == "default"


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
    # uv.lock: `make docker-build` writes it first (make lock) where the project has none yet.
    assert re.search(r"^docker-build: uv\.lock ", (root / "Makefile").read_text(), re.MULTILINE)
    locked = {"uv.lock"}
    files = sorted(set(docker_project.files) | set(clutter) | locked)
    sent = {f for f in files if not dockerignore_excludes(patterns, f)}
    assert not sent & set(clutter), f"the context would include {sorted(sent & set(clutter))}"
    # Everything the Dockerfile copies from the context is in it.
    dockerfile = (root / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(?:--chown=\S+ )?(.+) \S+$", dockerfile, re.MULTILINE)
    for source in " ".join(copied).split():
        assert any(f == source or f.startswith(source.rstrip("/") + "/") for f in sent), source
    top_level = {"pyproject.toml", "README.md", "LICENSE", "uv.lock"}
    installer = {"scripts/install_locked.sh", "scripts/torch_index.sh"}
    needed = {
        f
        for f in set(docker_project.files) | locked
        if f in top_level or f in installer or f.split("/")[0] in {"src", "configs"}
    }
    assert sent == needed


def test_the_ignore_matcher_follows_docker_semantics():
    patterns = ["*", "!src/", "**/__pycache__"]
    assert dockerignore_excludes(patterns, "data/x.parquet")
    assert not dockerignore_excludes(patterns, "src/pkg/a.py")
    assert dockerignore_excludes(patterns, "src/pkg/__pycache__/a.pyc")


# ---- the image, where a Docker engine answers ---------------------------------------------------


def docker_engine() -> str:
    """The docker command, or a skip saying why there is no engine to build with."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no `docker` command on this machine: the image is not built")
    try:
        info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.skip("`docker info` did not answer in 60 s: the image is not built")
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines()
        reason = next((line for line in lines if "daemon" in line.lower()), lines[-1:] or [""])
        pytest.skip(f"the Docker engine does not answer (`docker info`: {reason}): not built")
    return docker


def png_upload(pixels: bytes, size: int) -> tuple[bytes, str]:
    """One 8-bit grey PNG of ``size`` x ``size`` as a multipart body with a ``files`` part."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("L", (size, size), pixels).save(buffer, format="PNG")
    boundary = uuid.uuid4().hex
    head = 'Content-Disposition: form-data; name="files"; filename="digit.png"\r\n\r\n'
    body = f"--{boundary}\r\n{head}".encode() + buffer.getvalue() + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.slow
def test_the_image_serves_the_exported_model(render, tmp_path):
    docker = docker_engine()
    rendered = render({"use_docker": True, "docker_base": "cpu"})
    assert rendered.answers["task"] == "image_classification"  # the request below: a digit
    project = tmp_path / "project"
    shutil.copytree(rendered.path, project)
    pkg = package_name(rendered.answers)
    python = str(VENV_BIN / "python")
    env = {"PYTHONPATH": str(project / "src"), "OMP_NUM_THREADS": "1"}
    # An exported model in outputs/, made on this machine (the image holds no data).
    run([python, "-m", f"{pkg}.data.prepare"], project, **env)
    run([python, "-m", f"{pkg}.data.validate"], project, **env)
    train = ["model=cnn_small", "trainer.max_epochs=1", "logger=none"]
    train += ["trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}"]
    run([python, "-m", f"{pkg}.train", *train], project, **env)
    ckpt = tmp_path / "run" / "checkpoints" / "best.pt"
    model = project / "outputs" / "pipeline" / "model.pt2"
    export = [f"ckpt_path={ckpt}", f"output={model}", f"hydra.run.dir={tmp_path / 'export'}"]
    run([python, "-m", f"{pkg}.export", *export], project, **env)
    (project / "outputs" / "serve").mkdir()
    os.chmod(project / "outputs", 0o777)  # whichever uid the engine maps us to may write

    run(["uv", "lock"], project)  # what `make docker-build` does first: the image installs it
    tag = f"{pkg}-serve-test:{uuid.uuid4().hex[:8]}"
    run([docker, "build", "-t", tag, "."], project, timeout=1800)
    container = None
    try:
        user = f"{os.getuid()}:{os.getgid()}"
        mount = f"{project / 'outputs'}:/app/outputs"
        publish = "127.0.0.1::8000"  # any free port of this machine's loopback
        started = run(
            [docker, "run", "-d", "--rm", "--user", user, "-p", publish, "-v", mount, tag],
            project,
        )
        container = started.stdout.strip()
        port = run([docker, "port", container, "8000"], project).stdout.split(":")[-1].strip()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    assert json.loads(response.read()) == {"status": "ok"}
                    break
            except (urllib.error.URLError, ConnectionError):
                logs = subprocess.run([docker, "logs", container], capture_output=True, text=True)
                assert time.monotonic() < deadline, f"no answer in 180 s:\n{logs.stderr}"
                time.sleep(1)
        body, content_type = png_upload(bytes(range(0, 256, 4)), 8)
        request = urllib.request.Request(
            f"{url}/predict", data=body, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        [prediction] = answer["predictions"]
        assert prediction["path"] == "digit.png"
        assert sum(prediction[f"prob_{k}"] for k in range(10)) == pytest.approx(1.0, abs=1e-5)
    finally:
        if container:
            subprocess.run([docker, "stop", container], capture_output=True, timeout=120)
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)
