"""Peak memory of `train` on image files, and on ten times as many: does it grow with the data?

Renders the default project (digits, SmallCNN), writes two folders of class folders of 32x32 RGB
PNG files (10 classes; N and 10N images, smooth random pictures tinted by class, deterministic),
a data config with ``source: <folder>`` (as docs/how-to/own-data.md shows), and runs the
project's own ``prepare``, ``validate`` and one epoch of ``train`` (``logger=none``), each as a
subprocess, with ``data.num_workers`` 0 and 2.

Two figures per run, because a DataLoader's workers are processes of their own:

- ``ru_maxrss`` of the child (``os.wait4``): the peak of the LARGEST SINGLE process of the tree
  (Linux folds the reaped workers' peaks into their parent's by taking the maximum, not the sum);
- the process tree's peak, sampled every 0.1 s from ``/proc/<pid>/smaps_rollup`` over the child
  and all its descendants: the sum of RSS (counts the pages the forked workers share with the
  trainer once per process: an upper bound) and the sum of PSS (shared pages divided between the
  processes sharing them: what the tree really holds).

Two knobs show where memory goes: ``--cache-bytes B`` sets the package's ``CACHE_BYTES`` (the
decoded files each dataset keeps, per process) for the train runs, and
``--malloc-mmap-threshold B`` sets glibc's ``MALLOC_MMAP_THRESHOLD_`` (a fixed threshold: large
short-lived blocks, the batches, are mmapped instead of carved from the heap between the cache's
small long-lived tensors).

A measurement, not a test: ``python benchmarks/image_memory.py [--images 3000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "my_dl_project"
CLASSES = 10
DATA_CONFIG = """\
defaults:
  - digits
  - _self_

name: bench_images
source: {source}
num_classes: {classes}
class_names: null
image_shape: [3, 32, 32]
pixel_range: [0, 255]
resize: false
"""
# Runs train with data/images.py's CACHE_BYTES set first (forked workers inherit it).
WITH_CACHE_BYTES = (
    "import runpy, sys; from my_dl_project.data import images; "
    "images.CACHE_BYTES = int(sys.argv.pop(1)); "
    "runpy.run_module('my_dl_project.train', run_name='__main__', alter_sys=True)"
)
TRAIN = (
    "logger=none",
    "data=bench_images",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.early_stopping.enabled=false",
)


def write_images(folder: Path, count: int) -> None:
    """``count`` 32x32 RGB PNG files, ``folder/<class>/<index>.png``, the same on every call."""
    from PIL import Image

    rng = np.random.default_rng(0)
    tints = rng.uniform(-60, 60, (CLASSES, 1, 1, 3))
    for name in range(CLASSES):
        (folder / f"c{name}").mkdir(parents=True)
    for start in range(0, count, 1000):
        n = min(1000, count - start)
        coarse = rng.uniform(0, 255, (n, 8, 8, 3))
        labels = np.arange(start, start + n) % CLASSES
        fine = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2) + tints[labels]
        fine += rng.normal(0, 8, fine.shape)  # every file distinct: no duplicates across splits
        pixels = np.clip(fine, 0, 255).astype(np.uint8)
        for offset, (image, label) in enumerate(zip(pixels, labels, strict=True)):
            Image.fromarray(image, mode="RGB").save(folder / f"c{label}" / f"{start + offset}.png")


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of process ``pid`` in KiB; (0, 0) when it has just exited."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                key, value, *_ = line.split()
                if key in values:
                    values[key] = int(value)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return values["Rss:"], values["Pss:"]


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Exit code, seconds, ru_maxrss, and the tree's sampled peak RSS and PSS sums (MiB)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    parent = psutil.Process(child.pid)
    tree_rss = tree_pss = 0
    processes = 1
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        try:
            pids = [child.pid] + [p.pid for p in parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pids = [child.pid]
        sizes = [_memory_kb(p) for p in pids]
        tree_rss = max(tree_rss, sum(rss for rss, _ in sizes))
        tree_pss = max(tree_pss, sum(pss for _, pss in sizes))
        processes = max(processes, len(pids))
        time.sleep(0.1)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above
    return {
        "code": child.returncode,
        "seconds": time.perf_counter() - start,
        "maxrss": usage.ru_maxrss / 1024,
        "tree_rss": tree_rss / 1024,
        "tree_pss": tree_pss / 1024,
        "processes": processes,
    }


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="images of the small dataset")
    parser.add_argument("--runs", type=int, default=3, help="train runs per dataset and workers")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--model", default="cnn_small")
    parser.add_argument("--workdir", type=Path, default=None, help="kept between calls if given")
    parser.add_argument("--cache-bytes", type=int, default=None, help="data/images.py CACHE_BYTES")
    parser.add_argument("--malloc-mmap-threshold", type=int, default=None, help="glibc's, bytes")
    args = parser.parse_args()
    import copier

    work = Path(args.workdir or tempfile.mkdtemp(prefix="image-memory-bench-")).resolve()
    project = work / "project"
    if not project.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copier.run_copy(str(ROOT), project, defaults=True, quiet=True, vcs_ref="HEAD")
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "OMP_NUM_THREADS": "1"}
    if args.malloc_mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    module = [sys.executable, "-m"]
    train = [*module, f"{PACKAGE}.train"]
    if args.cache_bytes is not None:
        train = [sys.executable, "-c", WITH_CACHE_BYTES, str(args.cache_bytes)]
    cache = "as packaged" if args.cache_bytes is None else args.cache_bytes
    threshold = "unset" if args.malloc_mmap_threshold is None else args.malloc_mmap_threshold
    print(f"CACHE_BYTES {cache}, MALLOC_MMAP_THRESHOLD_ {threshold}")
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the start; MiB below")
    for label, count in (("N", args.images), ("10N", 10 * args.images)):
        folder = work / f"images-{count}"
        if not folder.exists():
            started = time.perf_counter()
            write_images(folder, count)
            print(f"{label}: wrote {count:,} PNG files in {time.perf_counter() - started:.0f} s")
        (project / "configs/data/bench_images.yaml").write_text(
            DATA_CONFIG.format(source=folder, classes=CLASSES)
        )
        data = [f"paths.data_dir={work}/data-{count}", f"model={args.model}"]
        for step in ("prepare", "validate"):
            m = measure([*module, f"{PACKAGE}.data.{step}", *TRAIN, *data], project, env)
            assert m["code"] == 0, f"{label} {step} exited {m['code']}"
            print(f"{label} {step}: ru_maxrss {m['maxrss']:.0f}, {m['seconds']:.0f} s")
        for workers in args.workers:
            runs = []
            for run in range(args.runs):
                out = [
                    f"data.num_workers={workers}",
                    f"paths.output_dir={work}/run-{label}-{workers}-{run}-{time.time_ns()}",
                ]
                m = measure([*train, *TRAIN, *data, *out], project, env)
                assert m["code"] == 0, f"{label} train exited {m['code']}"
                runs.append(m)
            figures = {key: [r[key] for r in runs] for key in runs[0]}
            print(
                f"{label} train, {workers} workers, {args.runs} runs (median (min-max)): "
                f"ru_maxrss {spread(figures['maxrss'])}, tree RSS sum "
                f"{spread(figures['tree_rss'])}, tree PSS sum {spread(figures['tree_pss'])}, "
                f"{spread(figures['seconds'])} s, {max(figures['processes'])} processes, "
                f"load {os.getloadavg()[0]:.1f}"
            )


if __name__ == "__main__":
    main()
