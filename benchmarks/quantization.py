"""Post-training quantization's figures: the trained default model against its int8 copies.

Renders the default project (digits, the CNN) and ``-d task=text_classification`` (the
Transformer) from the last commit, trains each with its defaults (``logger=none``), then, in the
project, compares the best checkpoint with its ``dynamic_int8`` and ``weight_only_int8`` copies
on the test split with ``evaluation/quantization.py``'s ``compare`` (what ``evaluate`` calls),
``--runs`` times: size of the serialized state dict, latency per batch of ``data.batch_size``
rows (each run: the median of 5 timed batches; the figures: the median over runs and the range
of the run medians), the main metric's change and the time ``compare`` takes. Torch uses the
threads ``OMP_NUM_THREADS`` allows.

A measurement, not a test: ``OMP_NUM_THREADS=1 python benchmarks/quantization.py [--runs 5]`` (one
thread: on a shared 2-core machine two threads per process make the latencies swing tenfold).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "my_dl_project"
TASKS = {
    "image_classification": "digits, SmallCNN",
    "text_classification": "docstrings, Transformer",
}

# Run inside the project: the test split as evaluate feeds it to the model.
MEASURE = """
import json, sys, time
from pathlib import Path
from omegaconf import OmegaConf
from PKG.data.datasets import load_split
from PKG.evaluate import image_array
from PKG.evaluation import quantization
from PKG.inference import checkpoint_task, load_checkpoint, restore_model

state, path = load_checkpoint(sys.argv[1])
model, _ = restore_model(state, path, "cpu")
task = checkpoint_task(state, path)
data = OmegaConf.create(state["config"]).data
tokenizer = task.tokenizer_json if task.text else None
test = load_split(data, Path("data/processed"), "test", task.targets, tokenizer_json=tokenizer)
x = test.padded() if task.text else image_array(test)
y = test.targets.numpy().reshape(len(test))
rows = []
for method in quantization.METHODS:
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter()
        found = quantization.compare(model, x, y, task, {"method": method}, int(data.batch_size))
        seconds = time.perf_counter() - start
        rows.append({"method": method, "seconds": seconds, "layers": found.quantized_layers,
                     "share": found.quantized_share, "rows": len(y), **found.metrics()})
print(json.dumps(rows))
""".replace("PKG", PACKAGE)


def render(into: Path, task: str) -> None:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(
            str(ROOT), str(into), data={"task": task}, defaults=True, quiet=True, vcs_ref="HEAD"
        )


def run(project: Path, *command: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}  # as if installed
    done = subprocess.run(
        [sys.executable, *command], cwd=project, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    v = [scale * x for x in values]
    return f"{statistics.median(v):.{digits}f} [{min(v):.{digits}f}, {max(v):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        "| task, model | method | quantized (layers, share of parameters) | size float -> int8 "
        "(bytes, ratio) | latency per batch float / int8 (ms) | speedup | main metric float "
        "-> int8 (test rows) | compare() (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for task, label in TASKS.items():
            project = Path(tmp) / task
            render(project, task)
            for module in ("data.prepare", "data.validate"):
                run(project, "-m", f"{PACKAGE}.{module}")
            run(project, "-m", f"{PACKAGE}.train", "logger=none", "paths.output_dir=outputs/run")
            ckpt = str(project / "outputs/run/checkpoints/best.pt")
            rows = json.loads(run(project, "-c", MEASURE, ckpt, str(args.runs)))
            for method in dict.fromkeys(row["method"] for row in rows):
                runs = [row for row in rows if row["method"] == method]
                first = runs[0]
                if "quantization/float_metric" not in first:
                    print(f"| {label} | {method} | none | | | | | |")
                    continue
                latency = [r["quantization/float_latency_ms"] for r in runs]
                latency_q = [r["quantization/int8_latency_ms"] for r in runs]
                speedup = [r["quantization/speedup"] for r in runs]
                print(
                    f"| {label} | `{method}` | {first['layers']}, {first['share']:.1%} | "
                    f"{first['quantization/float_size_bytes']:.0f} -> "
                    f"{first['quantization/int8_size_bytes']:.0f} "
                    f"({first['quantization/size_ratio']:.2f}) | {spread(latency)} / "
                    f"{spread(latency_q)} | {spread(speedup)} | "
                    f"{first['quantization/float_metric']:.4f} -> "
                    f"{first['quantization/int8_metric']:.4f} ({first['rows']}) | "
                    f"{spread([r['seconds'] for r in runs])} |"
                )


if __name__ == "__main__":
    main()
