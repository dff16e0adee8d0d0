"""Migration for a release that renames a generated file: carry the user's edits to the new name.

Copier deletes a file that the new release no longer renders, the user's edits with it, and puts
the release's copy at the new name. Run after the update (copier's default `after` stage), in the
project's root, this script merges the user's edits into the file at its new name:

    _migrations:
      - version: "0.5.0"   # the release that renames the file
        command:
          - "{{ _copier_python }}"
          - "{{ _copier_conf.src_path }}/hooks/move_file.py"
          - "--template={{ _copier_conf.src_path }}"
          - "src/{{ package_name }}/models/cnn.py"    # the old name, in the project
          - "src/{{ package_name }}/models/conv.py"   # the new name

- The user's version is the old file in the project's last commit (copier updates only a clean
  tree, so `HEAD` holds it).
- The template's version of the old file, the merge base, comes from the template repository at
  the release the project is updated from (`$VERSION_FROM`, set by copier). It is exact for plain
  files; for a `.jinja` file, or when it cannot be found, the release's new file is the base,
  which is right when the release renamed the file without changing it.
- `git merge-file` then applies the user's edits to the new file, with the markers copier uses
  (`<<<<<<< before updating`) where they overlap the release's changes.

Nothing happens when the project had no old file (the user had deleted it) or had not edited it,
or when the old file is still there. Standard library and git only. Tested in
tests/test_update.py.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

LABELS = ["-L", "before updating", "-L", "last update", "-L", "after updating"]


def git(*args: str, cwd: Path | str = ".") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)


def committed(path: str) -> bytes | None:
    """The file as in the project's last commit, or None."""
    shown = git("show", f"HEAD:{path}")
    return shown.stdout if shown.returncode == 0 else None


def template_base(template: Path, commit: str, old: str) -> bytes | None:
    """The template's copy of `old` at `commit`, if it is one plain file found unambiguously."""
    config = git("show", f"{commit}:copier.yml", cwd=template)
    subdirectory = ""
    if config.returncode == 0:
        found = re.search(rb"^_subdirectory:\s*['\"]?([^'\"\s#]+)", config.stdout, re.MULTILINE)
        subdirectory = found.group(1).decode().strip("/") if found else ""
    listed = git("ls-tree", "-r", "--name-only", commit, "--", subdirectory or ".", cwd=template)
    if listed.returncode != 0:
        return None
    matches = []
    for name in listed.stdout.decode().splitlines():
        inside = name[len(subdirectory) + 1 :] if subdirectory else name
        # A `{{ answer }}` path segment matches any one name; `{% %}` names are not handled.
        pattern = "".join(
            "[^/]+" if part.startswith("{{") else re.escape(part)
            for part in re.split(r"(\{\{.*?\}\})", inside)
        )
        if re.fullmatch(pattern, old):
            matches.append(name)
    if len(matches) != 1:
        return None
    shown = git("show", f"{commit}:{matches[0]}", cwd=template)
    return shown.stdout if shown.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True, help="the template's checkout")
    parser.add_argument("old", help="the file's old path in the project")
    parser.add_argument("new", help="the file's new path in the project")
    args = parser.parse_args(argv)
    old, new = Path(args.old), Path(args.new)

    user = committed(args.old)
    if user is None or old.exists() or not new.exists():
        return 0  # deleted by the user, not removed by the update, or nothing to merge into
    commit = os.environ.get("VERSION_FROM", "")
    base = template_base(args.template, commit, args.old) if commit else None
    release = new.read_bytes()
    if base is None:
        base = release
    if user == base:
        return 0  # not edited: the release's file is right as it is

    with tempfile.TemporaryDirectory() as tmp:
        merged, base_file = Path(tmp, "user"), Path(tmp, "base")
        merged.write_bytes(user)
        base_file.write_bytes(base)
        result = git("merge-file", *LABELS, str(merged), str(base_file), str(new))
        if result.returncode < 0 or result.returncode > 127:
            sys.stderr.write(result.stderr.decode(errors="replace"))
            return 1
        new.write_bytes(merged.read_bytes())
    outcome = "with conflicts to resolve" if result.returncode else "cleanly"
    print(f"move_file: {old} is now {new}; your edits were merged into it {outcome}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
