"""The default pipeline end to end: wall time of each stage and the test accuracy.

Each round renders the default answers afresh (so ``prepare`` writes the bundled digits as PNG
files, as on a first run) and runs, from the project's root, as a user would:

    python -m my_dl_project.data.prepare
    python -m my_dl_project.data.validate
    python -m my_dl_project.train logger=none paths.output_dir=outputs/train/bench
    python -m my_dl_project.evaluate logger=none ckpt_path=outputs/train/bench

``logger=none``: no MLflow store (``mlflow.db``) is opened or written, so the figures leave out
MLflow's import and the sqlite store (about 3 s a command, docs/benchmarks.md). The test
accuracy is ``test/accuracy`` of the training run's ``metrics.json`` (``test_after_fit``) and
the one ``evaluate`` writes to ``reports/metrics.json``. Medians and ranges over ``--rounds``.

A measurement, not a test: ``python benchmarks/pipeline.py [--rounds 3]``.
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
RUN = "outputs/train/bench"
STAGES = {
    "prepare": ["data.prepare"],
    "validate": ["data.validate"],
    "train": ["train", "logger=none", f"paths.output_dir={RUN}"],
    "evaluate": ["evaluate", "logger=none", f"ckpt_path={RUN}"],
}


def render(into: Path) -> None:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(str(ROOT), str(into), defaults=True, quiet=True, vcs_ref="HEAD")


def accuracy(metrics_file: Path) -> float | None:
    """``test/accuracy`` wherever it sits in a metrics.json (flat or nested by split)."""
    metrics = json.loads(metrics_file.read_text())
    if "test/accuracy" in metrics:
        return float(metrics["test/accuracy"])
    nested = metrics.get("test", {})
    return float(nested["accuracy"]) if "accuracy" in nested else None


def spread(values: list[float], digits: int = 1) -> str:
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {stage: [] for stage in [*STAGES, "whole"]}
    trained, evaluated = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            project = Path(tmp) / f"round-{index}"
            render(project)
            env = {**os.environ, "PYTHONPATH": str(project / "src")}  # as if installed
            load = os.getloadavg()[0]
            for stage, (module, *overrides) in STAGES.items():
                command = [sys.executable, "-m", f"{PACKAGE}.{module}", *overrides]
                start = time.perf_counter()
                done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
                times[stage].append(time.perf_counter() - start)
                assert done.returncode == 0, f"{stage} exited {done.returncode}:\n{done.stderr}"
            times["whole"].append(sum(times[stage][-1] for stage in STAGES))
            trained.append(accuracy(project / RUN / "metrics.json"))
            evaluated.append(accuracy(project / "reports/metrics.json"))
            assert not (project / "mlflow.db").exists(), "logger=none wrote an MLflow store"
            print(
                f"round {index + 1}: "
                + ", ".join(f"{stage} {times[stage][-1]:.1f} s" for stage in times)
                + f"; test accuracy {trained[-1]} (train), {evaluated[-1]} (evaluate); "
                f"load {load:.1f} before, {os.getloadavg()[0]:.1f} after"
            )
    print(f"{os.cpu_count()} CPUs; {args.rounds} rounds, median (min-max):")
    for stage, values in times.items():
        print(f"  {stage:9s} {spread(values)} s")
    if None not in evaluated:
        print(f"  test accuracy (evaluate) {spread(evaluated, 4)}; (train) {spread(trained, 4)}")


if __name__ == "__main__":
    main()
