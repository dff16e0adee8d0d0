"""`copier update`: a project made from an older release takes a newer one without losing edits.

Each test builds its own git repository of the template in a temporary folder (a copy of
copier.yml, includes/, template/ and hooks/ as they are on disk, committed and tagged there), so
no commit or tag is ever made in this repository. The releases are tagged `0.1.0`, `0.2.0`, ...
as the real ones are (PEP 440, see docs/updating.md). The later release changes files the way a
template improvement does: a line in a file the user also edited, a line in one they did not,
and a new module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from copier.errors import UnsafeTemplateError

from .conftest import TEMPLATE_ROOT, VENV_BIN, list_files, run, tool_env

# What a template repository holds; hooks/ holds the migration scripts.
TEMPLATE_PARTS = ["copier.yml", "includes", "template", "hooks"]
PACKAGE = "my_dl_project"  # the default answers' package name
CONFLICT_MARKERS = ("<<<<<<<", ">>>>>>>")

# The template's change in 0.2.0 (made in the temporary repository only).
README_LINE_V2 = "Updated by the template's release 0.2.0."
GITIGNORE_LINES_V2 = "\n# Added in 0.2.0\n.scratch/\n"
NEW_MODULE_V2 = f"src/{PACKAGE}/models/added_in_v2.py"
NEW_MODULE_TEXT = '"""A module that the template added in 0.2.0."""\n\nADDED_IN = "0.2.0"\n'

# The user's edits after generating the project.
MODEL_EDIT = (
    "\n\ndef widened(channels: int) -> int:\n"
    '    """A helper the user added to the generated model."""\n'
    "    return 2 * channels\n"
)
USER_CONFIG = "configs/experiment/my_experiment.yaml"
USER_CONFIG_TEXT = "# @package _global_\n# The user's own experiment.\nseed: 7\n"
README_EDIT = "\n## Our notes\n\nThe user's own section, written after generation.\n"


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], cwd=repo).stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)


def copy_template_files(destination: Path) -> None:
    destination.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")
    for name in TEMPLATE_PARTS:
        source = TEMPLATE_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, destination / name)


def new_template_repo(destination: Path) -> Path:
    """A git repository of the template as it is on disk, tagged 0.1.0."""
    copy_template_files(destination)
    git(destination, "init", "-q", "-b", "main")
    commit_all(destination, "release 0.1.0")
    git(destination, "tag", "0.1.0")
    return destination


def release(repo: Path, version: str) -> None:
    commit_all(repo, f"release {version}")
    git(repo, "tag", version)


def change_template_for_v2(repo: Path) -> None:
    template = repo / "template"
    readme = template / "README.md.jinja"
    lines = readme.read_text().splitlines(keepends=True)
    # Near the top: far from the user's section at the end, so the two merge cleanly.
    readme.write_text("".join([lines[0], "\n", README_LINE_V2 + "\n", *lines[1:]]))
    gitignore = template / ".gitignore"
    gitignore.write_text(gitignore.read_text() + GITIGNORE_LINES_V2)
    module = template / "src" / "{{package_name}}" / "models" / "added_in_v2.py"
    module.write_text(NEW_MODULE_TEXT)


def copy_project(
    repo: Path, destination: Path, vcs_ref: str, data: dict[str, Any] | None = None
) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(repo), destination, data=data or {}, vcs_ref=vcs_ref, defaults=True,
            quiet=True, unsafe=False,
        )  # fmt: skip
    return destination


def update_project(project: Path, **options: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_update(
            str(project), defaults=True, overwrite=True, quiet=True, **{"unsafe": False, **options}
        )


def new_project(repo: Path, destination: Path, vcs_ref: str = "0.1.0", **data: Any) -> Path:
    """A project as `make setup` leaves it: copied at a release and committed."""
    copy_project(repo, destination, vcs_ref, data)
    git(destination, "init", "-q", "-b", "main")
    commit_all(destination, "generated")
    return destination


def model_module(project: Path) -> Path:
    """The first example network of the project: the file a user edits."""
    models = project / "src" / PACKAGE / "models"
    examples = [p for p in models.glob("*.py") if p.name not in {"__init__.py", "added_in_v2.py"}]
    return sorted(examples)[0]


def make_user_edits(project: Path) -> None:
    model = model_module(project)
    model.write_text(model.read_text() + MODEL_EDIT)
    (project / USER_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (project / USER_CONFIG).write_text(USER_CONFIG_TEXT)
    readme = project / "README.md"
    readme.write_text(readme.read_text() + README_EDIT)


def tree(root: Path) -> dict[str, bytes]:
    return {
        path: (root / path).read_bytes()
        for path in list_files(root)
        if not path.startswith(".git/") and "__pycache__" not in path
    }


def is_a_template_page(path: str, content: bytes) -> bool:
    """A page of docs/ as the template has it (docs/updating.md shows conflict markers)."""
    page = TEMPLATE_ROOT / path
    return path.startswith("docs/") and page.is_file() and page.read_bytes() == content


def files_with_conflicts(project: Path) -> list[str]:
    found = []
    for path, content in tree(project).items():
        text = content.decode(errors="replace")
        if is_a_template_page(path, content):
            continue
        if path.endswith(".rej") or any(
            line.startswith(CONFLICT_MARKERS) for line in text.splitlines()
        ):
            found.append(path)
    return found


def copier_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "copier"), *args],
        cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


# The tests that share the `updated` project run on one xdist worker, so it is built once.
UPDATE_FLOW = pytest.mark.xdist_group("update-flow")


@dataclass(frozen=True)
class Updated:
    repo: Path
    project: Path
    head_before: str  # the user's last commit before the update


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as on disk tagged 0.1.0, and the same plus a typical change tagged 0.2.0."""
    repo = new_template_repo(tmp_path_factory.mktemp("update") / "template")
    change_template_for_v2(repo)
    release(repo, "0.2.0")
    return repo


@pytest.fixture(scope="module")
def updated(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Updated:
    """A project copied at 0.1.0, edited and committed by its user, then updated to 0.2.0."""
    project = new_project(template_repo, tmp_path_factory.mktemp("update") / "project")
    make_user_edits(project)
    commit_all(project, "the user's edits")
    head_before = git(project, "rev-parse", "HEAD").strip()
    update_project(project)
    return Updated(template_repo, project, head_before)


@pytest.mark.slow
@UPDATE_FLOW
def test_update_keeps_the_users_edits_and_brings_the_templates_changes(updated: Updated):
    project = updated.project
    answers = (project / ".copier-answers.yml").read_text()
    assert "_commit: 0.2.0" in answers
    # The user's edits are kept.
    assert model_module(project).read_text().endswith(MODEL_EDIT)
    assert (project / USER_CONFIG).read_text() == USER_CONFIG_TEXT
    readme = (project / "README.md").read_text()
    assert readme.endswith(README_EDIT)
    # The template's changes arrive, in the file the user edited too.
    assert README_LINE_V2 in readme
    assert (project / ".gitignore").read_text().endswith(GITIGNORE_LINES_V2)
    assert (project / NEW_MODULE_V2).read_text() == NEW_MODULE_TEXT
    # Copier exits 0 on conflicts: look for what it leaves behind.
    assert files_with_conflicts(project) == []
    # The update touched the working tree only; the user reviews and commits it.
    assert git(project, "rev-parse", "HEAD").strip() == updated.head_before


@pytest.mark.slow
@UPDATE_FLOW
def test_updated_project_converges_to_a_fresh_render_plus_the_users_edits(
    updated: Updated, tmp_path: Path
):
    fresh = copy_project(updated.repo, tmp_path / "fresh", "0.2.0")
    make_user_edits(fresh)
    expected, actual = tree(fresh), tree(updated.project)
    assert sorted(actual) == sorted(expected)
    differing = [path for path in expected if actual[path] != expected[path]]
    assert differing == []


@pytest.mark.slow
@UPDATE_FLOW
def test_updated_project_passes_its_own_tests(updated: Updated):
    # The project's tests of what the update and the user touched: the README's layout table
    # and the models. (Its whole fast suite takes ~50 s; test_render_matrix.py runs it on every
    # fresh render.)
    touched = [t for t in ["tests/test_layout.py", "tests/test_models.py"]
               if (updated.project / t).exists()]  # fmt: skip
    assert touched, "the project has neither tests/test_layout.py nor tests/test_models.py"
    run(
        [str(VENV_BIN / "python"), "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
         *touched],
        cwd=updated.project, timeout=300, OMP_NUM_THREADS="1",
    )  # fmt: skip


@pytest.mark.slow
@UPDATE_FLOW
def test_check_update_reports_the_new_release_then_nothing(updated: Updated, tmp_path: Path):
    # A project still at 0.1.0 is told about 0.2.0 ...
    old = new_project(updated.repo, tmp_path / "old")
    report = copier_cli("check-update", "--output-format", "json", cwd=old)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == {
        "update_available": True,
        "current_version": "0.1.0",
        "latest_version": "0.2.0",
    }
    quiet = copier_cli("check-update", "--quiet", cwd=old)
    assert (quiet.returncode, quiet.stdout) == (2, "")
    plain = copier_cli("check-update", cwd=old)
    assert "Current version is 0.1.0, latest version is 0.2.0." in plain.stdout
    # ... and one at 0.2.0 is up to date.
    latest = new_project(updated.repo, tmp_path / "latest", vcs_ref="0.2.0")
    current = copier_cli("check-update", cwd=latest)
    assert (current.returncode, current.stdout.strip()) == (0, "Project is up-to-date!")
    assert copier_cli("check-update", "--quiet", cwd=latest).returncode == 0


@pytest.mark.slow
def test_changing_an_answer_on_update_adds_and_removes_exactly_its_files(
    template_repo: Path, tmp_path: Path
):
    project = new_project(template_repo, tmp_path / "project")
    before = tree(project)
    docker_files = {"Dockerfile", ".dockerignore"}
    assert docker_files <= set(before)

    # As a user types it: keep the release, change one answer.
    off = copier_cli(
        "update", "--defaults", "-r", ":current:", "-d", "use_docker=false", cwd=project
    )
    assert off.returncode == 0, off.stderr
    without = tree(project)
    assert set(before) - set(without) == docker_files
    assert set(without) - set(before) == set()
    assert files_with_conflicts(project) == []
    assert "use_docker: false" in without[".copier-answers.yml"].decode()
    assert "_commit: 0.1.0" in without[".copier-answers.yml"].decode()
    # Everything else (the Makefile's docker targets, the README) matches a render without docker.
    fresh = copy_project(template_repo, tmp_path / "fresh", "0.1.0", {"use_docker": False})
    assert without == tree(fresh)

    # And back: the files return exactly as a fresh render has them.
    commit_all(project, "no docker")
    update_project(project, vcs_ref=copier.VcsRef.CURRENT, data={"use_docker": True})
    assert tree(project) == before


@pytest.mark.slow
def test_conflicts_are_marked_deletions_kept_and_skipped_files_left_alone(
    template_repo: Path, tmp_path: Path
):
    """What docs/updating.md tells users about conflicts, deleted files and `--skip`."""
    project = new_project(template_repo, tmp_path / "project")
    # The same lines that 0.2.0 appends to: a conflict.
    gitignore = project / ".gitignore"
    gitignore.write_text(gitignore.read_text() + "\n# The user's own\n*.ckpt\n")
    # A file the user does not want.
    unwanted = project / "configs" / "experiment" / "example.yaml"
    if not unwanted.exists():  # the template's examples change while it is being written
        unwanted = project / ".editorconfig"
    unwanted.unlink()
    # A README rewritten from scratch: updated with `--skip README.md`, it is left alone.
    own_readme = "# Our project\n\nNothing of the template's README is left.\n"
    (project / "README.md").write_text(own_readme)
    commit_all(project, "the user's edits")

    update_project(project, skip_if_exists=["README.md"])
    assert (project / "README.md").read_text() == own_readme
    assert not unwanted.exists()
    assert files_with_conflicts(project) == [".gitignore"]
    merged = gitignore.read_text()
    assert "<<<<<<< before updating" in merged and ">>>>>>> after updating" in merged
    assert "*.ckpt" in merged and ".scratch/" in merged
    # Git knows the file is unmerged, as after `git merge`: `git status` lists it.
    assert git(project, "diff", "--name-only", "--diff-filter=U").split() == [".gitignore"]
    assert (project / NEW_MODULE_V2).exists()


MIGRATION_SCRIPT = """\
\"\"\"A test migration: append one line per run to the project's migrations log.\"\"\"

import os
import sys
from pathlib import Path

versions = f"{os.environ['VERSION_PEP440_FROM']} -> {os.environ['VERSION_PEP440_TO']}"
with Path(".migrations.log").open("a", encoding="utf-8") as log:
    log.write(f"{sys.argv[1]} {versions}\\n")
"""

MIGRATION_ENTRY = """
_migrations:
  - version: "0.2.0"
    command:
      - "{{ _copier_python }}"
      - "{{ _copier_conf.src_path }}/hooks/record_migration.py"
      - "{{ _stage }}"
"""


def set_migrations(repo: Path, block: str) -> None:
    """Make ``block`` (a ``_migrations:`` list) the template's only migrations: the test's own."""
    config = repo / "copier.yml"
    lines = config.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("_migrations:"))
    end = start + 1
    while end < len(lines) and lines[end].startswith((" ", "-")):
        end += 1
    lines[start:end] = [block.lstrip("\n")]
    config.write_text("".join(lines))


def add_migration(repo: Path) -> None:
    """Give the temporary template a migration at 0.2.0 (after the real ones, if any)."""
    (repo / "hooks").mkdir(exist_ok=True)
    (repo / "hooks" / "record_migration.py").write_text(MIGRATION_SCRIPT)
    config = repo / "copier.yml"
    text = config.read_text()
    if "\n_migrations: []\n" in text:
        config.write_text(text.replace("\n_migrations: []\n", MIGRATION_ENTRY, 1))
    elif "\n_migrations:" in text:
        data = yaml.safe_load(text)
        data["_migrations"].extend(yaml.safe_load(MIGRATION_ENTRY)["_migrations"])
        config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        config.write_text(text + MIGRATION_ENTRY)
    assert len(yaml.safe_load(config.read_text())["_migrations"]) >= 1


@pytest.mark.slow
def test_a_migration_runs_once_at_its_version_and_only_then_needs_trust(tmp_path: Path):
    repo = new_template_repo(tmp_path / "template")
    add_migration(repo)
    release(repo, "0.2.0")
    project = new_project(repo, tmp_path / "project")  # `copy` needs no trust: no migration runs
    log = project / ".migrations.log"

    # Crossing 0.2.0 runs the migration: copier refuses without --trust.
    with pytest.raises(UnsafeTemplateError):
        update_project(project)
    assert not log.exists()
    assert git(project, "status", "--porcelain") == ""
    update_project(project, unsafe=True)
    assert log.read_text() == "after 0.1.0 -> 0.2.0\n"
    commit_all(project, "update to 0.2.0")

    # A later release that does not cross 0.2.0: no migration, and no trust needed.
    readme = repo / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nA line added in 0.3.0.\n")
    release(repo, "0.3.0")
    update_project(project)
    assert "_commit: 0.3.0" in (project / ".copier-answers.yml").read_text()
    assert log.read_text() == "after 0.1.0 -> 0.2.0\n"
    assert files_with_conflicts(project) == []


MOVE_ENTRY = """
_migrations:
  - version: "0.2.0"
    command:
      - "{{ _copier_python }}"
      - "{{ _copier_conf.src_path }}/hooks/move_file.py"
      - "--template={{ _copier_conf.src_path }}"
      - "src/{{ package_name }}/models/%s"
      - "src/{{ package_name }}/models/renamed.py"
"""


@pytest.mark.slow
def test_move_file_carries_the_users_edits_to_a_renamed_file(tmp_path: Path):
    """hooks/move_file.py: a release renames a module the user edited, and changes it too."""
    repo = new_template_repo(tmp_path / "template")
    project = new_project(repo, tmp_path / "project")
    old = model_module(project)
    old.write_text(old.read_text() + MODEL_EDIT)  # the user's edit, at the end
    commit_all(project, "the user's edit")

    # 0.2.0 renames the module, adds a line at its top, and migrates with hooks/move_file.py.
    models = repo / "template" / "src" / "{{package_name}}" / "models"
    original = (models / old.name).read_text()
    (models / old.name).unlink()
    (models / "renamed.py").write_text("# Renamed in 0.2.0.\n" + original)
    config = repo / "copier.yml"
    set_migrations(repo, MOVE_ENTRY % old.name)
    assert len(yaml.safe_load(config.read_text())["_migrations"]) == 1
    release(repo, "0.2.0")

    update_project(project, unsafe=True)
    assert not old.exists()
    renamed = old.parent / "renamed.py"
    assert renamed.read_text() == "# Renamed in 0.2.0.\n" + original + MODEL_EDIT
    assert files_with_conflicts(project) == []


# The modules that 0.1.0 moved (copier.yml's migrations at "0.1.0"): old name -> new name.
MOVED_IN_0_1_0 = {
    f"src/{PACKAGE}/training/errors.py": f"src/{PACKAGE}/errors.py",
    f"src/{PACKAGE}/evaluation/progress.py": f"src/{PACKAGE}/tracking/progress.py",
}
PROGRESS_EDIT = (
    "\n\ndef user_chart_size() -> tuple[int, int]:\n"
    '    """A helper the user added to the progress charts."""\n'
    "    return (11, 4)\n"
)
ERRORS_EDIT = '\n\nclass UserError(ConfigError):\n    """A config error that the user added."""\n'


@pytest.mark.slow
def test_a_project_from_before_0_1_0_keeps_its_edits_to_the_modules_0_1_0_moved(tmp_path: Path):
    """The real migrations: a project made from a commit before the first release, with the old
    layout (0.0.9 here), updated to 0.1.0 (the template as on disk) with --trust."""
    repo = tmp_path / "template"
    copy_template_files(repo)
    source = repo / "template" / "src" / "{{package_name}}"
    for old, new in MOVED_IN_0_1_0.items():  # the old layout: the same modules, at the old names
        inside = Path(*Path(old).parts[2:]), Path(*Path(new).parts[2:])
        (source / inside[0]).write_bytes((source / inside[1]).read_bytes())
        (source / inside[1]).unlink()
    git(repo, "init", "-q", "-b", "main")
    release(repo, "0.0.9")
    project = new_project(repo, tmp_path / "project", vcs_ref="0.0.9")
    edits = dict(zip(MOVED_IN_0_1_0, (ERRORS_EDIT, PROGRESS_EDIT), strict=True))
    for old, edit in edits.items():
        (project / old).write_text((project / old).read_text() + edit)
    commit_all(project, "the user's edits")
    shutil.rmtree(repo / "template")  # 0.1.0: the template as on disk
    caches = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")
    shutil.copytree(TEMPLATE_ROOT / "template", repo / "template", ignore=caches)
    release(repo, "0.1.0")

    with pytest.raises(UnsafeTemplateError):  # the update crosses the migrations' release
        update_project(project)
    update_project(project, unsafe=True)
    for old, new in MOVED_IN_0_1_0.items():
        assert not (project / old).exists()
        released = (source / Path(*Path(new).parts[2:])).read_text()
        assert (project / new).read_text() == released + edits[old]
    assert files_with_conflicts(project) == []
    imports = f"from {PACKAGE}.errors import UserError; from {PACKAGE}.tracking import progress"
    run([str(VENV_BIN / "python"), "-c", f"{imports}; progress.user_chart_size()"],
        cwd=project, PYTHONPATH=str(project / "src"))  # fmt: skip


def move_file_case(tmp_path: Path, user: str | None, release: str) -> tuple[Path, str]:
    """A project as copier leaves it after renaming m.py to n.py; run hooks/move_file.py there."""
    template = tmp_path / "template"
    (template / "template" / "src" / "{{package_name}}").mkdir(parents=True)
    (template / "copier.yml").write_text("_subdirectory: template\n")
    (template / "template" / "src" / "{{package_name}}" / "m.py").write_text("a = 1\nb = 2\n")
    git(template, "init", "-q")
    commit_all(template, "0.1.0")
    project = tmp_path / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "README.md").write_text("a project\n")
    if user is not None:
        (project / "src" / "pkg" / "m.py").write_text(user)
    git(project, "init", "-q")
    commit_all(project, "the user's project")
    (project / "src" / "pkg" / "m.py").unlink(missing_ok=True)  # the update removed it ...
    (project / "src" / "pkg" / "n.py").write_text(release)  # ... and rendered the new name
    proc = run(
        [str(VENV_BIN / "python"), str(TEMPLATE_ROOT / "hooks" / "move_file.py"),
         f"--template={template}", "src/pkg/m.py", "src/pkg/n.py"],
        cwd=project, VERSION_FROM=git(template, "rev-parse", "HEAD").strip(),
    )  # fmt: skip
    return project / "src" / "pkg" / "n.py", proc.stdout


@pytest.mark.parametrize(
    ("user", "release", "merged", "says"),
    [
        # Edits far from the release's change merge cleanly.
        ("a = 1\nb = 2\nc = 3\n", "# n\na = 1\nb = 2\n", "# n\na = 1\nb = 2\nc = 3\n", "cleanly"),
        # The same line changed on both sides: copier's markers.
        (
            "a = 10\nb = 2\n",
            "a = 100\nb = 2\n",
            "<<<<<<< before updating\na = 10\n=======\na = 100\n>>>>>>> after updating\nb = 2\n",
            "with conflicts",
        ),
        # Not edited, or deleted by the user: the release's file stays as it is, silently.
        ("a = 1\nb = 2\n", "# n\na = 1\nb = 2\n", "# n\na = 1\nb = 2\n", ""),
        (None, "# n\na = 1\nb = 2\n", "# n\na = 1\nb = 2\n", ""),
    ],
    ids=["clean", "conflict", "unedited", "deleted"],
)
def test_move_file_merges_like_copier(tmp_path, user, release, merged, says):
    new, stdout = move_file_case(tmp_path, user, release)
    assert new.read_text() == merged
    assert (says in stdout) if says else stdout == ""
