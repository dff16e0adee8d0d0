"""The generated devcontainers (VS Code, Codespaces): both parse, start from an image of the
project's Python, set the project up with a Makefile target that exists, forward the ports of
what the project serves, and reference no file the project lacks."""

from __future__ import annotations

import json
import re

import pytest
import yaml

VARIANTS = {
    "cpu": ".devcontainer/devcontainer.json",
    "cuda": ".devcontainer/cuda/devcontainer.json",
}
FILE_KEYS = ("dockerFile", "dockerfile", "dockerComposeFile", "context")


def makefile_targets(text: str) -> set[str]:
    return set(re.findall(r"^([a-zA-Z_-]+):", text, flags=re.MULTILINE))


@pytest.mark.parametrize("use_mlflow", [True, False])
def test_devcontainers_parse_and_reference_what_exists(render, use_mlflow):
    project = render({"use_mlflow": use_mlflow})
    answers = project.answers
    targets = makefile_targets((project.path / "Makefile").read_text())
    serve = yaml.safe_load((project.path / "configs" / "serve.yaml").read_text())
    for variant, name in VARIANTS.items():
        config = json.loads((project.path / name).read_text())  # strict JSON: no comments
        assert config["image"].endswith(f"-{answers['python_version']}-bookworm"), config["image"]
        command = config["postCreateCommand"].split()
        assert command[:1] == ["make"] and command[1] in targets, config["postCreateCommand"]
        torch = dict(arg.split("=", 1) for arg in command[2:])["TORCH"]
        assert torch == ("cpu" if variant == "cpu" else "cu128")  # scripts/torch_index.sh's names
        assert ("--gpus" in config.get("runArgs", [])) == (variant == "cuda")
        assert serve["port"] in config["forwardPorts"]
        assert (5000 in config["forwardPorts"]) == use_mlflow  # make mlflow-ui
        build = config.get("build", {})
        for key in FILE_KEYS:
            for value in [config.get(key), build.get(key)]:
                if value:
                    assert (project.path / ".devcontainer" / value).exists(), (name, key, value)
