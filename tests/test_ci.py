"""The generated project's CI: the files load, and every step is a Makefile target that the
template's own tests run (test_copy_cli.py runs setup, lint, test and repro in a fresh render)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

# The targets test_copy_cli.py's slow test runs with the project's own environment (lock-check on
# the lock that setup wrote, and again after a dependency is edited); test-all is
# the fast set it runs (`make test`) plus the slow set that test_generated_slow.py runs.
TESTED_TARGETS = {"setup", "lock-check", "lint", "test-all", "repro"}


def make_targets(commands: list[str]) -> list[str]:
    targets = []
    for command in commands:
        match = re.fullmatch(r"make ([a-z-]+)", command.strip())
        assert match, f"CI runs {command!r}, which is not a bare Makefile target"
        targets.append(match.group(1))
    return targets


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_ci_steps_are_tested_makefile_targets(render, ci):
    project = render({"ci": ci})
    if ci == "github":
        workflow = yaml.safe_load((project.path / ".github/workflows/ci.yml").read_text())
        steps = workflow["jobs"]["test"]["steps"]
        commands = [step["run"] for step in steps if "run" in step]
        assert any(step.get("uses", "").startswith("actions/checkout") for step in steps)
    else:
        pipeline = yaml.safe_load((project.path / ".gitlab-ci.yml").read_text())
        commands = list(pipeline["default"]["before_script"])
        for job in ("lint", "test", "pipeline"):
            commands += pipeline[job]["script"]
    targets = make_targets(commands)
    assert set(targets) == TESTED_TARGETS, targets
    assert targets[0] == "setup"
    # The lock is checked before anything runs in the environment installed from it.
    assert targets.index("lock-check") < targets.index("lint")
    makefile = (project.path / "Makefile").read_text()
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_no_ci_means_no_ci_files(render):
    project = render({"ci": "none"})
    assert not [f for f in project.files if f.startswith(".github") or "gitlab" in f]


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_ci_installs_the_cpu_build_of_torch_through_make_setup(render, ci):
    # Runners have no GPU: TORCH=cpu for `make setup` (scripts/torch_index.sh), not a pip
    # --extra-index-url, with which pip may still take PyPI's CUDA build.
    project = render({"ci": ci})
    if ci == "github":
        env = yaml.safe_load((project.path / ".github/workflows/ci.yml").read_text())["env"]
    else:
        env = yaml.safe_load((project.path / ".gitlab-ci.yml").read_text())["variables"]
    assert env["TORCH"] == "cpu"
    assert not any(name.startswith("PIP_") and "INDEX" in name for name in env)


def test_the_templates_own_workflow_runs_what_ci_runs():
    # The template repository's CI on GitHub runs the same entry point as .ci/run's callers, on
    # every push and pull request, with the Python the README asks for.
    root = Path(__file__).resolve().parents[1]
    workflow = yaml.safe_load((root / ".github" / "workflows" / "test.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as the boolean true
    assert set(triggers) == {"push", "pull_request"}
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout")
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.11"
    assert steps[-1]["run"] == "bash .ci/run"
    assert job["timeout-minutes"] >= 90  # .ci/run's budget
    assert "download.pytorch.org/whl/cpu" in job["env"]["PIP_EXTRA_INDEX_URL"]  # no CUDA torch


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_the_data_routine_runs_on_a_schedule_and_keeps_its_report(render, ci):
    # The checklist's data routine: `make routine` on a schedule only, its report kept even when
    # it fails (a failing validation is the case it exists for).
    project = render({"ci": ci})
    makefile = (project.path / "Makefile").read_text()
    assert re.search(r"^routine:", makefile, flags=re.MULTILINE)
    if ci == "github":
        workflow = yaml.safe_load((project.path / ".github/workflows/routine.yml").read_text())
        triggers = workflow[True]
        assert set(triggers) == {"schedule", "workflow_dispatch"}
        assert triggers["schedule"][0]["cron"].count(" ") == 4  # five cron fields
        steps = workflow["jobs"]["routine"]["steps"]
        commands = [s["run"] for s in steps if "run" in s and s.get("if") != "always()"]
        assert make_targets(commands) == ["setup", "routine"]
        kept = [s for s in steps if s.get("if") == "always()"]
        assert any("reports/routine.md" in s.get("run", "") for s in kept)
        assert any(s.get("with", {}).get("path") == "reports/" for s in kept)
    else:
        pipeline = yaml.safe_load((project.path / ".gitlab-ci.yml").read_text())
        routine = pipeline["routine"]
        assert routine["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
        assert make_targets(routine["script"]) == ["routine"]
        assert (
            routine["artifacts"]["when"] == "always" and "reports/" in routine["artifacts"]["paths"]
        )
        for job in ("lint", "test", "pipeline"):  # pushes and merge requests, not the schedule
            assert pipeline[job]["extends"] == ".on-change"
        assert pipeline[".on-change"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE != "schedule"'}]
