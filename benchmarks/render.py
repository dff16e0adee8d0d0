"""How long does rendering one project take? (goal: under 2 s)

Times `copier.run_copy` with the default answers, from this git repository (copier clones it, as
for a user) and from a plain copy of the template's files (as the template tests render), and
prints the median and the worst of several runs. A measurement, not a test: run `make bench`.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import copier

ROOT = Path(__file__).resolve().parents[1]
RUNS = 10


def time_renders(source: Path, vcs_ref: str | None) -> list[float]:
    seconds = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            copier.run_copy(
                str(source), Path(tmp) / "project", defaults=True, quiet=True, vcs_ref=vcs_ref
            )
            seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as snapshot:
        for name in ["copier.yml", "includes", "template"]:
            source = ROOT / name
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, Path(snapshot) / name)
        results = {
            "from the git repository (copier clones it)": time_renders(ROOT, "HEAD"),
            "from a plain folder (the template tests)": time_renders(Path(snapshot), None),
        }
    print(f"Rendering one project with the default answers, {RUNS} runs each:")
    for label, seconds in results.items():
        median, worst = statistics.median(seconds), max(seconds)
        print(f"  {label:45s} median {median:.2f} s, worst {worst:.2f} s")


if __name__ == "__main__":
    main()
