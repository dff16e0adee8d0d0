"""Knowledge distillation: does the small student learn more from a teacher than alone?

Renders the template (the last commit; ``--task``: the default digits, or text_classification),
prepares and validates the bundled data, then for each seed runs, from the project's root, as a
user would (``logger=none``):

    python -m my_dl_project.train seed=S                       the teacher (the default model)
    python -m my_dl_project.train experiment=distill seed=S    the student alone (no teacher)
    python -m my_dl_project.train experiment=distill seed=S distillation.teacher_ckpt=<the
        teacher of seed S>/checkpoints/best.pt                 the student with distillation

All three with the default training (the same epochs and early stopping). The figure is
``test/accuracy`` of each run's ``metrics.json`` (its best checkpoint on the test split). The
comparison is paired by seed: the student with and without the teacher share the seed, hence
the initial weights and the data order; the difference per seed, its median and how many seeds
it wins are printed.

A measurement, not a test: ``OMP_NUM_THREADS=2 python benchmarks/distillation.py
[--task text_classification] [--seeds 42 1 2] [--temperature 4 --weight 0.5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "my_dl_project"


def render(into: Path, task: str) -> None:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(ROOT), str(into), data={"task": task}, defaults=True, quiet=True, vcs_ref="HEAD"
        )


def run(project: Path, module: str, *overrides: str) -> float:
    """Run ``python -m <package>.<module> overrides`` in ``project``; its time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(project / "src")}  # as if installed
    command = [sys.executable, "-m", f"{PACKAGE}.{module}", *overrides]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[2:])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def train(project: Path, name: str, seed: int, *overrides: str) -> tuple[float, float]:
    """Test accuracy and seconds of one training run, in ``outputs/<name>-<seed>``."""
    folder = f"outputs/{name}-{seed}"
    common = ["logger=none", f"seed={seed}", f"paths.output_dir={folder}"]
    seconds = run(project, "train", *common, "trainer.enable_progress_bar=false", *overrides)
    metrics = json.loads((project / folder / "metrics.json").read_text())
    return float(metrics["test/accuracy"]), seconds


def spread(values: list[float], digits: int = 4) -> str:
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="image_classification")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--weight", type=float, default=0.5)
    args = parser.parse_args()
    kd = [f"distillation.temperature={args.temperature}", f"distillation.weight={args.weight}"]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        render(project, args.task)
        run(project, "data.prepare")
        run(project, "data.validate")
        rows: dict[str, list[tuple[float, float]]] = {"teacher": [], "alone": [], "distilled": []}
        for seed in args.seeds:
            rows["teacher"].append(train(project, "teacher", seed))
            rows["alone"].append(train(project, "alone", seed, "experiment=distill"))
            teacher = f"distillation.teacher_ckpt=outputs/teacher-{seed}/checkpoints/best.pt"
            rows["distilled"].append(
                train(project, "distilled", seed, "experiment=distill", teacher, *kd)
            )
            print(f"seed {seed}: " + ", ".join(f"{k} {v[-1][0]:.4f}" for k, v in rows.items()))
    print(f"\n{args.task}, seeds {args.seeds}, T={args.temperature}, weight={args.weight}")
    print("| model | test accuracy, median (range) | train time (s) |\n| --- | --- | --- |")
    for name, values in rows.items():
        accuracy, seconds = [v[0] for v in values], [v[1] for v in values]
        print(f"| {name} | {spread(accuracy)} | {spread(seconds, 1)} |")
    gains = [d[0] - a[0] for d, a in zip(rows["distilled"], rows["alone"], strict=True)]
    wins = sum(gain > 0 for gain in gains)
    print(
        f"\ndistilled - alone, per seed: {', '.join(f'{g:+.4f}' for g in gains)}; median "
        f"{statistics.median(gains):+.4f}; better on {wins} of {len(gains)} seeds"
    )


if __name__ == "__main__":
    main()
