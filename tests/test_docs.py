"""The documentation agrees with copier.yml and with what the template renders."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import TEMPLATE_ROOT, VENV_BIN, tool_env

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


# --- the answers reference is generated ----------------------------------------------------------


def gen_answers():
    """docs/gen_answers.py, imported from its path (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_answers", DOCS / "gen_answers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_answers_reference_is_what_the_generator_makes_of_copier_yml():
    page = (DOCS / "reference" / "answers.md").read_text()
    assert gen_answers().render(page) == page, "run `python docs/gen_answers.py` and commit"


def test_answers_generator_words_cover_exactly_what_copier_yml_cannot_say():
    gen = gen_answers()
    specs = questions()
    computed = {name for name, spec in specs.items() if gen.is_template(spec.get("default"))}
    validated = {name for name, spec in specs.items() if not spec.get("choices")}
    assert set(gen.COMPUTED_DEFAULTS) == computed
    assert set(gen.ALLOWED) == validated


def test_answers_generator_refuses_a_page_without_its_markers():
    with pytest.raises(ValueError, match="markers"):
        gen_answers().render("# Answers\n\nno table here\n")


# --- the layout guide follows the render -------------------------------------------------------


def layout_headings() -> set[str]:
    """The paths in backticks of docs/layout.md's headings."""
    layout = (DOCS / "layout.md").read_text()
    return {
        path
        for heading in re.findall(r"^#{2,4} (.+)$", layout, flags=re.MULTILINE)
        for path in re.findall(r"`([^`]+)`", heading)
    }


def documented_paths(project: Path, package: str) -> set[str]:
    """What the layout guide must explain: the root's entries, configs/'s and the package's."""

    def entries(folder: str) -> set[str]:
        root = project / folder if folder else project
        return {
            f"{folder}{p.name}/" if p.is_dir() else f"{folder}{p.name}"
            for p in root.iterdir()
            if p.name not in {"__pycache__", ".git"}
        }

    package_entries = {
        path.replace(f"src/{package}/", "src/<package>/") for path in entries(f"src/{package}/")
    }
    return entries("") | entries("configs/") | package_entries


def test_layout_page_has_a_section_for_every_rendered_file_and_folder(default_project, render):
    gitlab = render({"ci": "gitlab"})
    expected = documented_paths(default_project.path, "my_dl_project") | documented_paths(
        gitlab.path, "my_dl_project"
    )
    missing = sorted(expected - layout_headings())
    assert not missing, f"docs/layout.md has no section (a heading naming it) for {missing}"


# --- the site ------------------------------------------------------------------------------------


def test_every_page_is_in_the_navigation_and_the_site_builds_strict(tmp_path):
    config = yaml.safe_load((TEMPLATE_ROOT / "mkdocs.yml").read_text())

    def pages(nav) -> list[str]:
        found = []
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found += pages(value) if isinstance(value, list) else [value]
        return found

    in_nav = set(pages(config["nav"]))
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk == in_nav
    # --strict: a broken link or anchor, or a stale answers table (the hook), fails the build.
    proc = subprocess.run(
        [str(VENV_BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=TEMPLATE_ROOT, env=tool_env(NO_MKDOCS_2_WARNING="1"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "tutorial" / "index.html").is_file()


def test_published_addresses_agree(default_project):
    """mkdocs.yml and the tutorial's `copier copy` source name the same repository."""
    from .test_tutorial import TEMPLATE_URL

    config = yaml.safe_load((TEMPLATE_ROOT / "mkdocs.yml").read_text())
    owner_name = TEMPLATE_URL.removeprefix("gh:")
    assert config["repo_url"] == f"https://github.com/{owner_name}"
    assert TEMPLATE_URL in (DOCS / "tutorial.md").read_text()


# --- the generated project carries the pages it links to ----------------------------------------


def relative_links(page: Path) -> list[str]:
    """The relative links of a Markdown page, without their anchors."""
    targets = re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8"))
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)]


@pytest.mark.parametrize("answers", [{}, {"use_docker": False, "use_mlflow": False}])
def test_the_generated_readme_and_docs_link_only_files_the_project_has(render, answers):
    project = render(answers).path
    site = yaml.safe_load((TEMPLATE_ROOT / "mkdocs.yml").read_text())["site_url"].rstrip("/")
    readme = project / "README.md"
    # The site is not hosted: a teammate with only the repository must find what is linked.
    assert site not in readme.read_text()
    pages = [readme, *sorted((project / "docs").rglob("*.md"))]
    readme_links = relative_links(readme)
    assert sum(link.startswith("docs/how-to/") for link in readme_links) >= 6
    for page in pages:
        for link in relative_links(page):
            assert (page.parent / link).is_file(), f"{page.relative_to(project)} links to {link}"


def test_the_generated_docs_are_the_template_docs(default_project):
    """One source: docs/ of the template, symlinked from template/docs/, rendered verbatim."""
    rendered = sorted((default_project.path / "docs").rglob("*.md"))
    assert len(rendered) >= 15
    for page in rendered:
        name = page.relative_to(default_project.path / "docs")
        assert page.read_bytes() == (DOCS / name).read_bytes(), name
    for link in (TEMPLATE_ROOT / "template" / "docs").rglob("*.md"):
        assert link.is_symlink(), f"{link} is a copy: make it a symlink to docs/ (one source)"
