"""Every answer combination renders into a clean project whose own checks pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .conftest import COMBINATION_PARAMS, COMBINATIONS, assert_untouched, project_state, run
from .matrix import ROTATED, STRUCTURAL, combination_id, expected_files, package_name

# A Jinja delimiter left in a rendered file means a template bug. `${{ ... }}` in GitHub Actions
# is that tool's own syntax and allowed.
LEFTOVER_JINJA = re.compile(r"(?<!\$)\{\{|\{%|\{#")
# The generated package's sources, as the template holds them.
TEMPLATE_SRC = Path(__file__).resolve().parents[1] / "template" / "src" / "{{package_name}}"
CORPUS_DIR = "data/{% if task == 'text_classification' %}corpus{% endif %}/"


@pytest.mark.parametrize("answers", COMBINATION_PARAMS)
def test_render_has_exactly_the_expected_files(render, answers):
    project = render(answers)
    expected = expected_files(answers)
    assert sorted(project.files - expected) == [], "unexpected files"
    assert sorted(expected - project.files) == [], "missing files"


@pytest.mark.parametrize("answers", COMBINATION_PARAMS)
def test_render_has_no_leftover_jinja_and_portable_names(render, answers):
    project = render(answers)
    for relative in project.files:
        assert not set(relative) & set('"|<>:*?\\'), f"non-portable file name: {relative}"
        if relative.endswith(".gz"):  # the text task's bundled corpus: data, copied verbatim
            source = TEMPLATE_SRC / relative.replace(f"src/{package_name(answers)}/", "", 1)
            source = Path(str(source).replace("data/corpus/", CORPUS_DIR, 1))
            assert (project.path / relative).read_bytes() == source.read_bytes(), relative
            continue
        text = (project.path / relative).read_text(encoding="utf-8")
        # docs/ holds the template's pages verbatim, which show copier's Jinja as examples; a
        # .j2 file is a Jinja template the package renders at run time (evaluation/report.md.j2),
        # copied verbatim: byte for byte the template's file, so copier rendered none of it.
        runtime_template = relative.endswith(".j2")
        if runtime_template:
            source = TEMPLATE_SRC / relative.replace(f"src/{package_name(answers)}/", "", 1)
            assert text == source.read_text(encoding="utf-8"), f"{relative} was rendered"
        verbatim = relative.startswith("docs/") or runtime_template
        match = None if verbatim else LEFTOVER_JINJA.search(text)
        where = text[match.start() - 40 : match.end() + 40] if match else ""
        assert match is None, f"{relative} keeps a Jinja delimiter: ...{where}..."
        if text:  # .gitkeep files are empty
            assert text.endswith("\n"), f"{relative}: no newline at the end"
            assert not text.endswith("\n\n"), f"{relative}: blank lines at the end"
        assert "\t" not in text or relative == "Makefile", f"{relative} contains a tab"


@pytest.mark.parametrize("answers", COMBINATION_PARAMS)
def test_render_records_its_answers(render, answers):
    project = render(answers)
    recorded = yaml.safe_load((project.path / ".copier-answers.yml").read_text())
    for name, value in answers.items():
        asked = {"dvc_remote": answers["use_dvc"], "docker_base": answers["use_docker"]}
        if not asked.get(name, True):
            assert name not in recorded  # not asked, so not recorded
            continue
        assert recorded[name] == value, name
    assert recorded["package_name"] == package_name(answers)


@pytest.mark.parametrize("answers", COMBINATION_PARAMS)
def test_render_passes_ruff(render, answers):
    project = render(answers)
    run(["ruff", "check", "--no-cache", "."], cwd=project.path)
    run(["ruff", "format", "--no-cache", "--check", "."], cwd=project.path)


def _code_key(answers: dict) -> tuple:
    """The answers that change the generated package, configs and tests. use_docker and ci change
    only the Makefile, the README and their own files, which have tests of their own; use_dvc
    changes only the test files in DVC_DEPENDENT_TESTS (and dvc.yaml, tested by test_pipeline);
    use_mlflow only the test files in MLFLOW_DEPENDENT_TESTS, configs/train.yaml's logger and
    whether the MLflow modules are there."""
    return answers["task"], answers["use_mlflow"]


# The generated test files whose content use_dvc / use_mlflow changes: checked against the
# template below.
DVC_DEPENDENT_TESTS = ["tests/test_evaluation.py", "tests/test_tracking.py"]
MLFLOW_DEPENDENT_TESTS = [
    "tests/test_cv.py",
    "tests/test_evaluation_entry.py",
    "tests/test_interruptions.py",
    "tests/test_outages.py",
    "tests/test_security.py",
    "tests/test_training.py",
    "tests/test_tune.py",
]
# What else a render without MLflow must pass: its configs against the schema (train.yaml's
# logger), every module importing without the MLflow ones, the README's promises.
WITHOUT_MLFLOW_TESTS = ["tests/test_config_schema.py", "tests/test_layers.py"]


def _first_of_each(key, among=COMBINATIONS) -> set[str]:
    return {combination_id(next(c for c in among if key(c) == k)) for k in {key(c) for c in among}}


# The package is the same for every render of one (task, use_mlflow): mypy checks one of each.
TYPECHECKED = _first_of_each(_code_key)
# One test worker per Python version: mypy's cache is kept per version and reused across renders
# (the settings are the same in every render), so the libraries (torch alone is most of the
# time, about a minute) are analysed once per version and a render after the first takes seconds.
TYPECHECK_PARAMS = [
    pytest.param(
        c, id=combination_id(c), marks=pytest.mark.xdist_group(f"mypy-{c['python_version']}")
    )
    for c in COMBINATIONS
    if combination_id(c) in TYPECHECKED
]


@pytest.mark.slow
@pytest.mark.parametrize("answers", TYPECHECK_PARAMS)
def test_render_passes_mypy(render, answers, tmp_path_factory):
    # `make typecheck`'s command, with the settings in the render's pyproject.toml.
    project = render(answers)
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"
    proc = run(["mypy", "--cache-dir", str(cache)], cwd=project.path)
    assert "Success: no issues found" in proc.stdout, proc.stdout


# One render of each task runs the whole fast set, with DVC and MLflow; one render of each task
# without either runs the files use_mlflow changes (and those use_dvc changes); the first render
# of each (task, use_mlflow, use_dvc) not covered so far runs the files use_dvc changes; every
# other render only test_layout.py (the README's promises), which is what use_docker and ci can
# change. So every test file runs on every task, and each file whose content an answer changes
# runs with each value of that answer, for a third of the time of a whole fast set per render.
FULL_FAST_SET = _first_of_each(
    lambda c: c["task"], [c for c in COMBINATIONS if c["use_dvc"] and c["use_mlflow"]]
)
MLFLOW_FAST_SET = _first_of_each(
    lambda c: c["task"], [c for c in COMBINATIONS if not (c["use_dvc"] or c["use_mlflow"])]
)
DVC_FAST_SET = (
    _first_of_each(lambda c: (*_code_key(c), c["use_dvc"])) - FULL_FAST_SET - MLFLOW_FAST_SET
)


def fast_test_files(answers: dict) -> list[str]:
    """The generated test files a render runs ([] for all of them)."""
    name = combination_id(answers)
    if name in FULL_FAST_SET:
        return []
    files = ["tests/test_layout.py"]
    if name in MLFLOW_FAST_SET:
        files += [*WITHOUT_MLFLOW_TESTS, *MLFLOW_DEPENDENT_TESTS, *DVC_DEPENDENT_TESTS]
    elif name in DVC_FAST_SET:
        files += DVC_DEPENDENT_TESTS
    return files


@pytest.mark.parametrize("answers", COMBINATION_PARAMS)
def test_render_passes_its_own_fast_tests(render, answers):
    # The slow ones (training to accuracy, DDP, resume, a tracking server) run once per task in
    # test_generated_slow.py: they do not depend on the structural answers.
    project = render(answers)
    cmd = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
    cmd += fast_test_files(answers)
    before = project_state(project.path)
    proc = run(cmd, cwd=project.path)
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout
    assert_untouched(before, project.path)


def test_every_task_runs_the_whole_fast_set_once_and_each_answer_its_own_files():
    tasks = [c["task"] for c in COMBINATIONS if combination_id(c) in FULL_FAST_SET]
    assert sorted(tasks) == sorted(ROTATED["task"])
    # ... every (task, use_mlflow) pair runs the files use_mlflow changes, and every
    # (task, use_mlflow, use_dvc) the files use_dvc changes.
    runs = {combination_id(c): (c, fast_test_files(c)) for c in COMBINATIONS}
    mlflow = {
        _code_key(c)
        for c, files in runs.values()
        if not files or set(MLFLOW_DEPENDENT_TESTS) <= set(files)
    }
    assert len(mlflow) == len(ROTATED["task"]) * 2
    dvc = {
        (*_code_key(c), c["use_dvc"])
        for c, files in runs.values()
        if not files or set(DVC_DEPENDENT_TESTS) <= set(files)
    }
    assert len(dvc) == len(ROTATED["task"]) * 2 * 2


def _mentioning(answer: str) -> list[str]:
    """The generated src/, configs/ and tests/ files whose template mentions ``answer``."""
    template = Path(__file__).parent.parent / "template"
    return sorted(
        str(path.relative_to(template)).removesuffix(".jinja")
        for path in template.rglob("*")
        if path.is_file()
        and path.parts[len(template.parts)] in ("src", "configs", "tests")
        and path.suffix != ".gz"  # the text task's bundled corpus
        and answer in path.read_text(encoding="utf-8")
    )


def test_use_mlflow_changes_no_generated_file_but_those_its_renders_test():
    # A file use_mlflow changes that the renders without MLflow do not run would go untested
    # there: add it to MLFLOW_DEPENDENT_TESTS (a test file) or test it in WITHOUT_MLFLOW_TESTS.
    assert _mentioning("use_mlflow") == ["configs/train.yaml", *MLFLOW_DEPENDENT_TESTS]


def test_use_dvc_changes_no_generated_file_but_the_dvc_dependent_tests():
    # If use_dvc ever changes another generated file (a module, a config, another test file),
    # the renders that skip it would no longer test it: add it to DVC_DEPENDENT_TESTS.
    assert _mentioning("use_dvc") == DVC_DEPENDENT_TESTS


def test_matrix_covers_every_answer_value():
    for name, values in {**STRUCTURAL, **ROTATED}.items():
        assert {c[name] for c in COMBINATIONS} == set(values), name
    # Each task meets each value of every structural answer.
    for structural, values in STRUCTURAL.items():
        pairs = {(c["task"], c[structural]) for c in COMBINATIONS}
        assert len(pairs) == len(ROTATED["task"]) * len(values), structural
