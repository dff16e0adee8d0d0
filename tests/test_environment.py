"""The shared test environment can run every rendered project's own tests.

The matrix runs each generated project's tests with this environment instead of installing each
render (which would take minutes per combination); that is sound only while this environment
satisfies every generated project's requirements. pyproject.toml's `generated` group lists them.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, metadata, version

import pytest
from packaging.requirements import Requirement

from .conftest import COMBINATION_PARAMS

# Extras tested in an environment of their own, not this one: torchvision imports only beside the
# torch build it was made for, and this environment holds the local CPU torch
# (tests/test_vision_backbones.py installs torch, torchvision and timm together).
OWN_ENVIRONMENT = {"vision"}


@pytest.mark.parametrize("answers", COMBINATION_PARAMS)
def test_this_environment_satisfies_the_rendered_requirements(render, answers):
    pyproject = tomllib.loads((render(answers).path / "pyproject.toml").read_text())
    project = pyproject["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for name, extra in project.get("optional-dependencies", {}).items():
        if name not in OWN_ENVIRONMENT:
            requirements += [Requirement(r) for r in extra]
    unmet = []
    for requirement in requirements:
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            unmet.append(f"{requirement} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{requirement} (installed {installed})")
        # An extra the package does not declare is ignored by pip without a word (dvc[gcs]).
        declared = set(metadata(requirement.name).get_all("Provides-Extra") or [])
        unmet += [f"{requirement} (no extra {x!r})" for x in requirement.extras - declared]
    assert not unmet, f"add to pyproject.toml's `generated` group: {unmet}"
