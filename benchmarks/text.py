"""The text task's figures: our Transformer beside a bag-of-words model, and the time of each stage.

Renders ``-d task=text_classification`` (the last commit) once and runs, from the project's root,
as a user would (``logger=none``: no MLflow store, so MLflow's import is not in the figures):

    python -m my_dl_project.data.prepare
    python -m my_dl_project.data.validate
    python -m my_dl_project.train logger=none seed=S paths.output_dir=outputs/train/seed-S
    python -m my_dl_project.evaluate logger=none ckpt_path=outputs/train/seed-S   (once)

``train`` runs once per seed (``--seeds``): the test accuracy is ``test/accuracy`` of its
``metrics.json`` (the best checkpoint on the test split). The baseline is TF-IDF (words and word
pairs) + logistic regression (scikit-learn) fitted on the same prepared training split and scored
on the same test split. ``evaluate`` is timed once; where it fails, its error is printed and the
figures say so. Torch uses the threads ``OMP_NUM_THREADS`` allows (the figures: 2).

A measurement, not a test: ``OMP_NUM_THREADS=2 python benchmarks/text.py [--seeds 42 1 2]``.
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


def render(into: Path) -> None:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(ROOT),
            str(into),
            data={"task": "text_classification"},
            defaults=True,
            quiet=True,
            vcs_ref="HEAD",
        )


def run(project: Path, module: str, *overrides: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}  # as if installed
    command = [sys.executable, "-m", f"{PACKAGE}.{module}", *overrides]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def bag_of_words(processed: Path) -> float:
    """Test accuracy of TF-IDF + logistic regression fitted on the training split."""
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = pd.read_parquet(processed / "train.parquet")
    test = pd.read_parquet(processed / "test.parquet")
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(C=10.0, max_iter=2000),
    )
    model.fit(train["text"], train["label"])
    return float((model.predict(test["text"]) == test["label"]).mean())


def spread(values: list[float], digits: int = 1) -> str:
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "text"
        render(project)
        times: dict[str, list[float]] = {"prepare": [], "validate": [], "train": []}
        for stage, module in (("prepare", "data.prepare"), ("validate", "data.validate")):
            seconds, done = run(project, module)
            assert done.returncode == 0, f"{stage} exited {done.returncode}:\n{done.stderr}"
            times[stage].append(seconds)
        accuracies = []
        for seed in args.seeds:
            folder = f"outputs/train/seed-{seed}"
            seconds, done = run(
                project, "train", "logger=none", f"seed={seed}", f"paths.output_dir={folder}"
            )
            assert done.returncode == 0, f"train exited {done.returncode}:\n{done.stderr}"
            times["train"].append(seconds)
            metrics = json.loads((project / folder / "metrics.json").read_text())
            accuracies.append(float(metrics["test/accuracy"]))
            loads.append(os.getloadavg()[0])
            print(f"seed {seed}: train {seconds:.1f} s, test accuracy {accuracies[-1]:.4f}")
        seconds, done = run(
            project, "evaluate", "logger=none", f"ckpt_path=outputs/train/seed-{args.seeds[0]}"
        )
        evaluated = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        if done.returncode:
            print(
                f"evaluate: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}"
            )
        baseline = bag_of_words(project / "data" / "processed")
    print(f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}")
    for stage, values in times.items():
        print(f"  {stage:9s} {spread(values)} s")
    print(f"  evaluate  {seconds:.1f} s ({evaluated})")
    print(f"  test accuracy, ours over seeds {args.seeds}: {spread(accuracies, 4)}")
    print(f"  test accuracy, TF-IDF + logistic regression: {baseline:.4f}")


if __name__ == "__main__":
    main()
