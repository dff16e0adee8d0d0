"""The documentation agrees with copier.yml and with what the template renders."""

from __future__ import annotations

import re

import yaml

from .conftest import TEMPLATE_ROOT

DOCS = TEMPLATE_ROOT / "docs"


def questions() -> dict[str, dict]:
    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    return {name: spec for name, spec in config.items() if not name.startswith("_")}


def test_answers_reference_documents_every_question_in_order():
    reference = (DOCS / "reference" / "answers.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \|.*\| (.+) \|$", reference, flags=re.MULTILINE)
    assert [name for name, _ in rows] == list(questions())
    for name, help_text in rows:
        assert help_text == questions()[name]["help"], f"{name}: help differs from copier.yml"


def test_answers_reference_lists_every_choice():
    reference = (DOCS / "reference" / "answers.md").read_text()
    for name, spec in questions().items():
        choices = spec.get("choices")
        if not choices or spec["type"] == "yaml":
            continue
        values = choices.values() if isinstance(choices, dict) else choices
        row = next(line for line in reference.splitlines() if line.startswith(f"| `{name}` |"))
        for value in values:
            assert f"`{value}`" in row, f"{name}: choice {value} is not documented"


def test_layout_page_names_every_package_folder(default_project):
    layout = (DOCS / "layout.md").read_text()
    package = default_project.path / "src" / "my_dl_project"
    for folder in sorted(p.name for p in package.iterdir() if p.is_dir()):
        assert f"{folder}/" in layout, f"docs/layout.md does not explain src/<package>/{folder}/"


def test_docs_pages_link_to_existing_pages():
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
