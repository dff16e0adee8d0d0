"""copier.yml's questions: the defaults, and a refusal naming what is allowed for bad answers."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import copier
import pytest
import yaml

from .conftest import TEMPLATE_ROOT

# (question, bad answer, words the refusal must contain)
BAD_ANSWERS = [
    ("project_name", "", "must not be empty"),
    ("project_name", " padded ", "must not start or end with spaces"),
    ("project_name", "9lives", "must start with a letter"),
    ("project_name", "my/project", "letters, digits, spaces"),
    ("project_name", "Über", "ASCII letters"),
    ("project_name", "~", "must start with a letter"),
    ("project_name", "1.0", "must start with a letter"),
    ("project_name", "x.", "must end with a letter or digit"),
    ("project_name", "my-project-", "must end with a letter or digit"),
    ("project_name", "tab\there", "letters, digits, spaces"),
    ("project_name", "a" * 65, "at most 64 characters"),
    ("package_name", "MyPackage", "lowercase letters, digits and underscores"),
    ("package_name", "my-package", "lowercase letters, digits and underscores"),
    ("package_name", "2fast", "must start with a lowercase letter"),
    ("package_name", "_private", "must start with a lowercase letter"),
    ("package_name", "class", "is a Python keyword"),
    ("package_name", "match", "is a Python keyword"),
    ("package_name", "random", "shadow the standard-library module"),
    ("package_name", "copy", "shadow the standard-library module"),
    ("package_name", "test", "shadow the standard-library module"),
    ("package_name", "torch", "shadow the dependency"),
    ("package_name", "hydra", "shadow the dependency"),
    ("package_name", "mlflow", "shadow the dependency"),
    ("package_name", "sklearn", "shadow the dependency"),
    ("package_name", "tests", "is a folder of the generated project"),
    ("package_name", "data", "is a folder of the generated project"),
    ("package_name", "a" * 65, "at most 64 characters"),
    ("description", "", "must not be empty"),
    ("description", "two\nlines", "single line"),
    ("description", "a\ttab", "no line breaks, tabs or control characters"),
    ("author_name", "   ", "must not be empty"),
    ("author_name", "A\nB", "single line"),
    ("author_name", "bell\a", "printable characters"),
    ("author_email", "not-an-email", "must be an e-mail address"),
    ("author_email", "a@b", "must be an e-mail address"),
    ("author_email", "a b@example.com", "must be an e-mail address"),
    ("author_email", 'a"b@example.com', "letters, digits and '.', '_', '%', '+', '-' before the @"),
    ("author_email", "a\\b@example.com", "must be an e-mail address"),
    ("author_email", "a@example.com\n", "must be an e-mail address"),
    ("author_email", "a@-example.com", "a domain name after it"),
    ("copyright_year", "26", "four-digit year"),
    ("license", "GPL-3.0", "not in ['MIT', 'Apache-2.0', 'BSD-3-Clause', 'Proprietary']"),
    ("python_version", "3.9", "not in ['3.10', '3.11', '3.12', '3.13']"),
    ("python_version", "3.14", "not in ['3.10', '3.11', '3.12', '3.13']"),
    ("task", "segmentation", "not in ['image_classification', 'tabular_classification'"),
    ("use_dvc", "maybe", "not in [True, False]"),
    ("dvc_remote", "ftp", "not in ['local', 's3', 'gcs', 'azure', 'none']"),
    ("dvc_remote_url", "has space", "without spaces"),
    ("use_mlflow", "sometimes", "not in [True, False]"),
    ("mlflow_tracking_uri", "mlruns", "must be sqlite:///<file>, http(s)://<host>:<port>"),
    ("mlflow_tracking_uri", "ftp://host", "must be sqlite:///<file>, http(s)://<host>:<port>"),
    ("mlflow_tracking_uri", "http://user:secret@host:5000", "MLFLOW_TRACKING_PASSWORD"),
    ("mlflow_tracking_uri", "sqlite:///a b.db", "only letters, digits"),
    ("use_docker", "2", "not in [True, False]"),
    ("docker_base", "rocm", "not in ['cpu', 'cuda']"),
    ("ci", "jenkins", "not in ['github', 'gitlab', 'none']"),
]

# The URL must match the kind of remote.
REMOTE_URLS = [
    ("s3", "gs://bucket/data", "must start with s3://"),
    ("gcs", "s3://bucket/data", "must start with gs://"),
    ("azure", "/srv/storage", "must start with azure://"),
    ("local", "s3://bucket/data", "must be a folder path, not a URL"),
    ("local", "--force", "not starting with '-'"),
    ("local", "C:\\dvc", "only letters, digits"),
    ("s3", "s3://bucket/a=b", "only letters, digits"),
    ("gcs", "gs://-bucket", "only letters, digits"),
]


@pytest.mark.parametrize(("remote", "url", "message"), REMOTE_URLS)
def test_remote_url_must_match_the_remote(template_snapshot, tmp_path, remote, url, message):
    with pytest.raises(ValueError, match="dvc_remote_url") as refusal:
        copy(template_snapshot, tmp_path / "p", dvc_remote=remote, dvc_remote_url=url)
    assert message in str(refusal.value)


# Answers a bad answer needs beside it to be asked at all.
CONTEXT = {"dvc_remote_url": {"dvc_remote": "s3"}}


def copy(template: Path, destination: Path, **answers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(template), destination, data=answers, defaults=True, quiet=True, unsafe=False
        )


@pytest.mark.parametrize(
    ("question", "answer", "message"),
    BAD_ANSWERS,
    ids=[f"{q}={a!r}" for q, a, _ in BAD_ANSWERS],
)
def test_bad_answer_is_refused_with_a_message(
    template_snapshot, tmp_path, question, answer, message
):
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match=question) as refusal:
        copy(template_snapshot, destination, **CONTEXT.get(question, {}), **{question: answer})
    assert message in str(refusal.value)
    # Refused before anything was written.
    assert not destination.exists() or not any(destination.iterdir())


def test_every_question_with_free_text_has_a_validator():
    questions = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    for name, spec in questions.items():
        if name.startswith("_"):
            continue
        assert spec.get("help"), f"{name} has no help text"
        assert "validator" in spec or "choices" in spec, f"{name} accepts any answer"


def test_every_question_has_a_bad_answer_in_the_table():
    questions = {
        k
        for k in yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
        if not k.startswith("_")
    }
    assert questions == {question for question, _, _ in BAD_ANSWERS}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("yes", True), ("no", False), ("true", True), ("false", False), (True, True), (False, False)],
)
def test_yes_no_questions_accept_yes_and_no(render, answer, expected):
    project = render({"use_docker": answer})
    assert ("Dockerfile" in project.files) is expected


def test_defaults_render_the_documented_project(default_project):
    answers = yaml.safe_load((default_project.path / ".copier-answers.yml").read_text())
    assert answers["package_name"] == "my_dl_project"
    assert answers["task"] == "image_classification"
    assert answers["use_dvc"] is True and answers["use_mlflow"] is True
    assert answers["python_version"] == "3.11"


def test_stdlib_names_cover_this_interpreter():
    names = (TEMPLATE_ROOT / "includes" / "python_names.jinja").read_text()
    missing = [
        n
        for n in sorted(sys.stdlib_module_names)
        if not n.startswith("_") and f'"{n}"' not in names
    ]
    assert not missing, (
        f"add these standard-library modules to includes/python_names.jinja: {missing}"
    )
