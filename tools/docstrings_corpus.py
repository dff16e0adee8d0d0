"""Build the text task's bundled corpus: the docstrings of the Python standard library.

    python3 tools/docstrings_corpus.py   # writes the generated project's corpus file

Every module, class and function docstring of at least 40 characters in the source files of the
module families below (tests excluded), cut at 1,500 characters, duplicates (by case-folded
content) dropped, labelled by family. The standard library is the interpreter's own: run it with
the CPython version the corpus says (3.11) to rebuild the same file. The text is the Python
Software Foundation's, under the PSF licence (written beside the corpus).
"""

import ast
import gzip
import json
import sys
import sysconfig
from pathlib import Path

OUT = (
    Path(__file__).resolve().parents[1]
    / "template/src/{{package_name}}/data/{% if task == 'text_classification' %}corpus{% endif %}"
)
MIN_CHARS, MAX_CHARS = 40, 1500
FAMILIES = {
    "text": ["string", "re", "textwrap", "difflib", "unicodedata", "codecs", "locale", "gettext",
             "stringprep", "encodings"],
    "files": ["os", "pathlib", "shutil", "tempfile", "glob", "fnmatch", "filecmp", "fileinput",
              "stat", "io", "_pyio", "zipfile", "tarfile", "gzip", "bz2", "lzma", "posixpath",
              "ntpath", "genericpath"],
    "internet": ["http", "urllib", "email", "smtplib", "imaplib", "poplib", "ftplib", "socket",
                 "ssl", "socketserver", "mimetypes", "xmlrpc", "wsgiref", "html", "ipaddress",
                 "mailbox"],
    "concurrency": ["threading", "multiprocessing", "concurrent", "asyncio", "queue", "sched",
                    "subprocess", "selectors", "signal"],
    "numbers": ["math", "cmath", "decimal", "_pydecimal", "fractions", "statistics", "random",
                "numbers", "_pylong"],
    "formats": ["json", "csv", "pickle", "pickletools", "shelve", "sqlite3", "xml",
                "configparser", "plistlib", "dbm", "copyreg", "tomllib", "base64", "binascii",
                "quopri", "uu"],
    "devtools": ["unittest", "doctest", "pdb", "bdb", "trace", "traceback", "inspect", "dis",
                 "ast", "tokenize", "pydoc", "profile", "cProfile", "pstats", "timeit",
                 "tracemalloc", "code", "codeop"],
    "time": ["datetime", "_strptime", "calendar", "time", "zoneinfo", "_pydatetime"],
}  # fmt: skip
DOCUMENTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)


def source_files(lib: Path, module: str) -> list[Path]:
    package = lib / module
    files = sorted(package.rglob("*.py")) if package.is_dir() else [lib / f"{module}.py"]
    skip = {"test", "tests", "idle_test"}
    return [f for f in files if f.is_file() and not skip & set(f.relative_to(lib).parts)]


def collect(lib: Path) -> list[dict[str, str]]:
    rows, seen = [], set()
    for family, modules in FAMILIES.items():
        for module in modules:
            for path in source_files(lib, module):
                tree = ast.parse(path.read_text(encoding="utf-8"))
                for node in ast.walk(tree):
                    doc = isinstance(node, DOCUMENTED) and ast.get_docstring(node, clean=True)
                    key = doc and " ".join(doc.lower().split())
                    if not doc or len(doc) < MIN_CHARS or key in seen:
                        continue
                    seen.add(key)
                    source = path.relative_to(lib).as_posix()
                    rows.append({"text": doc[:MAX_CHARS], "label": family, "module": source})
    return rows


def main() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit("run with CPython 3.11: the corpus is the 3.11 standard library's")
    lib = Path(sysconfig.get_paths()["stdlib"])
    rows = collect(lib)
    OUT.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    # mtime=0: the same rows give the same bytes (DVC and git see no change on a rebuild).
    with (
        open(OUT / "docstrings.jsonl.gz", "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out,
    ):
        out.write(lines.encode("utf-8"))
    licence = (lib / "LICENSE.txt").read_text(encoding="utf-8")
    (OUT / "LICENSE-PSF.txt").write_text(licence, encoding="utf-8")
    print(f"{len(rows)} docstrings -> {OUT / 'docstrings.jsonl.gz'}")


if __name__ == "__main__":
    main()
