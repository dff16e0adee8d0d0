"""Hostile answers (issue 16): an answer never runs a command, nor breaks the project it renders.

Two classes. Answers that reach a shell command (`dvc_remote_url` in `make setup`,
`mlflow_tracking_uri` in `make mlflow-ui`) are refused unless they are plain locations, and are
shell-quoted in the Makefile anyway (includes/quoting.jinja), so that a value that got past the
validators (an answers file edited by hand, an older template's answers) is still one word: the
Makefile targets are run here with stand-ins for dvc, mlflow, python and git that record their
arguments. Answers written into pyproject.toml and the YAML configs are escaped for each format:
quotes, backslashes and YAML's `null`/`True`/`Off` keep their exact value and type.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import warnings
from pathlib import Path

import copier
import pytest
import yaml
from jinja2.sandbox import SandboxedEnvironment

from .conftest import TEMPLATE_ROOT, tool_env

# --- answers that reach a shell command ----------------------------------------------------------

# Each of these passed the validators before issue 16 (no space, the right scheme), and each ran
# `touch pwned-...` in the project when `make setup` or `make mlflow-ui` ran it unquoted. A tab
# separates words for the shell (the old validators refused spaces only); `$$` is make's `$`.
HOSTILE_REMOTE_URLS = [
    ("s3", "s3://bucket/$(touch\tpwned-subst)"),
    ("s3", "s3://bucket/`touch\tpwned-backtick`"),
    ("local", "../storage;touch\tpwned-semicolon"),
    ("local", "../storage'$(touch\tpwned-quote)'"),
    ("gcs", "gs://bucket/$$(touch$${IFS}pwned-make-dollar)"),
    ("azure", "azure://container/x|touch\tpwned-pipe"),
    ("local", "../storage\n\ttouch\tpwned-recipe-line"),
]
HOSTILE_TRACKING_URIS = [
    "sqlite:///mlflow.db;touch\tpwned-semicolon",
    "http://host:5000/$(touch\tpwned-subst)",
    "databricks`touch\tpwned-backtick`",
    "sqlite:///a'$(touch\tpwned-quote)'#",
    "https://host/$$(touch$${IFS}pwned-make-dollar)",
    "http://host/x&&touch\tpwned-and",
    "sqlite:///a\n\ttouch\tpwned-recipe-line",
]
SHELL_CASES = list(zip(HOSTILE_REMOTE_URLS, HOSTILE_TRACKING_URIS, strict=True))
# The project's name heads the Makefile as a comment: a line break would start make syntax there
# (`$(shell ...)` runs while make reads the file), a trailing backslash would continue it.
HOSTILE_PROJECT_NAME = "Demo\n$(shell touch pwned-header)\n\ttouch pwned-header-recipe \\"


def copy(template: Path, destination: Path, **answers) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(template), destination, data=answers, defaults=True, quiet=True, unsafe=False
        )


@pytest.mark.parametrize(("remote", "url"), HOSTILE_REMOTE_URLS, ids=repr)
def test_a_remote_url_with_shell_syntax_is_refused(template_snapshot, tmp_path, remote, url):
    with pytest.raises(ValueError, match="dvc_remote_url") as refusal:
        copy(template_snapshot, tmp_path / "p", dvc_remote=remote, dvc_remote_url=url)
    assert "only letters, digits and '.', '_', '-'" in str(refusal.value)
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


@pytest.mark.parametrize("uri", HOSTILE_TRACKING_URIS, ids=repr)
def test_a_tracking_uri_with_shell_syntax_is_refused(template_snapshot, tmp_path, uri):
    with pytest.raises(ValueError, match="mlflow_tracking_uri") as refusal:
        copy(template_snapshot, tmp_path / "p", mlflow_tracking_uri=uri)
    message = str(refusal.value)
    assert "must be sqlite:///<file>, http(s)://<host>:<port>" in message
    assert "only letters, digits and '.', '_', '-', '/'" in message


# Locations the validators must keep accepting: the strict character set is not too strict.
GOOD_LOCATIONS = [
    ("dvc_remote_url", {"dvc_remote": "local"}, "../dvc-storage/my_dl_project"),
    ("dvc_remote_url", {"dvc_remote": "local"}, "~/dvc-storage/proj.v2"),
    ("dvc_remote_url", {"dvc_remote": "local"}, "/srv/dvc_store/team-a"),
    ("dvc_remote_url", {"dvc_remote": "s3"}, "s3://my.bucket-1/a/b_c/"),
    ("dvc_remote_url", {"dvc_remote": "gcs"}, "gs://bucket"),
    ("dvc_remote_url", {"dvc_remote": "azure"}, "azure://container/path/to/data"),
    ("mlflow_tracking_uri", {}, "sqlite:///mlflow.db"),
    ("mlflow_tracking_uri", {}, "sqlite:////var/lib/mlflow/runs.db"),
    ("mlflow_tracking_uri", {}, "http://127.0.0.1:5000"),
    ("mlflow_tracking_uri", {}, "https://mlflow.example.com/team-a/"),
    ("mlflow_tracking_uri", {}, "databricks"),
    ("mlflow_tracking_uri", {}, "databricks://my-profile"),
]


def validator_message(question: str, answer: str, **context: str) -> str:
    """What copier.yml's validator of `question` says about `answer` ("" accepts it), rendered as
    copier renders it: a sandboxed Jinja environment with copier's default filters."""
    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text(encoding="utf-8"))
    env = SandboxedEnvironment(extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"])
    return env.from_string(config[question]["validator"]).render(**context, **{question: answer})


@pytest.mark.parametrize(("question", "context", "answer"), GOOD_LOCATIONS, ids=repr)
def test_plain_locations_are_accepted(question, context, answer):
    assert validator_message(question, answer, **context) == ""


def test_copier_copy_exits_non_zero_with_the_message(template_snapshot, tmp_path):
    uri = HOSTILE_TRACKING_URIS[0]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "copier"), "copy", "--defaults",
         "-d", f"mlflow_tracking_uri={uri}", str(template_snapshot), str(tmp_path / "p")],
        env=tool_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "mlflow_tracking_uri must be sqlite:///<file>, http(s)://<host>:<port>" in proc.stderr
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


@pytest.fixture(scope="module")
def unvalidated_makefile_template(tmp_path_factory) -> Path:
    """The template's Makefile (and the scripts it runs), with the validators of the answers it
    holds removed: what a project gets from answers that never met these validators."""
    root = tmp_path_factory.mktemp("unvalidated")
    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text(encoding="utf-8"))
    for question in ["project_name", "dvc_remote_url", "mlflow_tracking_uri"]:
        del config[question]["validator"]
    (root / "copier.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shutil.copytree(TEMPLATE_ROOT / "includes", root / "includes")
    (root / "template").mkdir()
    shutil.copy2(TEMPLATE_ROOT / "template" / "Makefile.jinja", root / "template")
    shutil.copytree(TEMPLATE_ROOT / "template" / "scripts", root / "template" / "scripts")
    return root


RECORDER = """\
#!{python}
# A stand-in that records its name and arguments, one JSON line per call, and does nothing.
import json, os, sys
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
"""


def make_with_stand_ins(project: Path, tmp_path: Path, target: str) -> list[list[str]]:
    """Run `make <target>` with dvc, mlflow, python, pre-commit, git and uv recording their calls.

    VENV points at the stand-ins' folder: the Makefile puts its bin/ first on PATH, and skips
    creating the environment because the folder exists."""
    venv = tmp_path / "stand-ins"
    log = tmp_path / "calls.jsonl"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    for name in ["dvc", "mlflow", "python", "python3", "pre-commit", "git", "uv"]:
        tool = venv / "bin" / name
        tool.write_text(RECORDER.format(python=sys.executable, log=str(log)), encoding="utf-8")
        tool.chmod(0o755)
    # The lock the first `make setup` writes with `uv lock` (a stand-in here, which writes nothing):
    # the installer reads torch's version from it.
    lock = project / "uv.lock"
    if not lock.exists():
        lock.write_text('version = 1\n\n[[package]]\nname = "torch"\nversion = "2.9.1"\n')
    env = tool_env(NVIDIA_SMI=str(tmp_path / "no-nvidia-smi"))
    proc = subprocess.run(
        ["make", target, f"VENV={venv}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    ran = sorted(p.name for folder in [project, tmp_path] for p in folder.rglob("pwned*"))
    assert not ran, f"an answer ran a command in `make {target}`: {ran}"
    assert proc.returncode == 0, f"make {target} exited {proc.returncode}:\n{proc.stderr}"
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return [json.loads(line) for line in calls]


def one_shell_word(value: str) -> str:
    """What a value is once make has read it. A line break cannot be written into a recipe line
    as it is: make keeps a backslash before it and drops the recipe's tab after it; the value
    stays one word."""
    return value.replace("\n\t", "\\\n")


@pytest.fixture(scope="module", params=SHELL_CASES, ids=lambda case: repr(case[0][1])[:24])
def hostile_project(request, unvalidated_makefile_template, tmp_path_factory):
    """(dvc_remote_url, mlflow_tracking_uri, the rendered project) for a pair of hostile URLs."""
    (kind, url), tracking_uri = request.param
    project = tmp_path_factory.mktemp("hostile") / "project"
    copy(
        unvalidated_makefile_template, project,
        dvc_remote=kind, dvc_remote_url=url, mlflow_tracking_uri=tracking_uri,
        project_name=HOSTILE_PROJECT_NAME, package_name="demo",
    )  # fmt: skip
    return url, tracking_uri, project


def test_make_setup_passes_the_remote_url_as_one_word(hostile_project, tmp_path):
    url, _, project = hostile_project
    calls = make_with_stand_ins(project, tmp_path, "setup")
    added = [call for call in calls if call[:3] == ["dvc", "remote", "add"]]
    assert added == [["dvc", "remote", "add", "--default", "storage", "--", one_shell_word(url)]]


def test_make_mlflow_ui_passes_the_tracking_uri_as_one_word(hostile_project, tmp_path):
    _, tracking_uri, project = hostile_project
    calls = make_with_stand_ins(project, tmp_path, "mlflow-ui")
    assert calls == [
        ["mlflow", "ui", "--backend-store-uri", one_shell_word(tracking_uri),
         "--host", "127.0.0.1", "--port", "5000"],
    ]  # fmt: skip


# --- answers written into pyproject.toml and the YAML configs ------------------------------------

# Answers the validators accept that are hard for TOML or YAML: quotes, backslashes, non-ASCII
# letters, and project names that YAML reads as null, a boolean or (unquoted) anything but text.
AWKWARD_ANSWERS = [
    {
        "project_name": "null",
        "description": 'Say "hi" to C:\\new\\table \\u00e9 and \\"escapes\\"',
        "author_name": 'Zoë O\'Brien \\ "Z" 张伟',
        "author_email": "first.last+tag@mail.example.co.uk",
    },
    {"project_name": "True", "use_dvc": False},
    {"project_name": "Off"},
    {
        "project_name": "Yes " + "n" * 60,  # the longest name there is
        "description": "\\t is no tab; ${not.an.interpolation}",
        "author_name": "\\",
    },
]
# PEP 508's name, which pip and build backends check.
DISTRIBUTION_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@pytest.fixture(scope="module", params=AWKWARD_ANSWERS, ids=lambda a: repr(a["project_name"])[:12])
def awkward(request, render):
    return request.param, render(request.param)


def test_pyproject_holds_the_answers_exactly(awkward):
    answers, project = awkward
    meta = tomllib.loads((project.path / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert DISTRIBUTION_NAME.match(meta["name"]), meta["name"]
    assert meta["description"] == answers.get("description", meta["description"])
    author = meta["authors"][0]
    assert author["name"] == answers.get("author_name", "Your Name")
    assert author["email"] == answers.get("author_email", "you@example.com")


def test_yaml_files_hold_the_answers_as_text(awkward):
    answers, project = awkward
    recorded = yaml.safe_load((project.path / ".copier-answers.yml").read_text(encoding="utf-8"))
    for question, answer in answers.items():
        assert recorded[question] == answer
    logger = yaml.safe_load((project.path / "configs/logger/mlflow.yaml").read_text("utf-8"))
    assert logger["experiment_name"] == answers["project_name"]
    assert logger["tracking_uri"] == "sqlite:///mlflow.db"


COMPOSE = textwrap.dedent("""\
    import json, sys
    package = __import__(sys.argv[1])
    from importlib import import_module
    cfg = import_module(sys.argv[1] + ".config").compose()
    import_module(sys.argv[1] + ".settings").check(cfg, "train")
    print(json.dumps({"experiment_name": cfg.logger.experiment_name}))
""")


def test_the_package_imports_and_the_training_config_composes(awkward):
    answers, project = awkward
    package = yaml.safe_load((project.path / ".copier-answers.yml").read_text())["package_name"]
    proc = subprocess.run(
        [sys.executable, "-c", COMPOSE, package],
        cwd=project.path, env=tool_env(PYTHONPATH=str(project.path / "src")),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"experiment_name": answers["project_name"]}
