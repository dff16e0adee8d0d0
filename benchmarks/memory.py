"""Peak memory of `train` on a streamed table, and on one 10x larger: does it grow with the data?

Renders a tabular-classification project, writes a synthetic raw table of the breast-cancer
schema (30 float features; written in chunks, so this script holds no whole table either), runs
the generated project's `prepare` and `validate` (chunked: data.stream=true) and then `train`
for one epoch, each as a subprocess, and reports the peak resident set size of `train` (the
child's ru_maxrss) over several runs: median and range.

With `--limit-gb G` (root, cgroup v1 or v2 memory controller) every command of the large table
runs in a memory cgroup limited to G GiB, chosen so that the processed training split is larger
than half of it: it cannot be held twice. One in-memory run (data.stream=false) in the same
cgroup shows what the stream avoids. A measurement, not a test: `make bench` does not run it
(minutes, gigabytes of disk); run `python benchmarks/memory.py [--limit-gb 2]`.
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
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "my_dl_project"
CHUNK = 500_000
TRAIN = (
    "logger=none",
    "data.batch_size=4096",
    "data.val_fraction=0.1",
    "data.test_fraction=0.1",
    "model=mlp_small",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.early_stopping.enabled=false",
)


def write_raw(path: Path, rows: int, features: list[str]) -> None:
    """A raw table of ``rows`` rows the breast-cancer raw schema accepts, chunk by chunk."""
    rng = np.random.default_rng(0)
    writer = None
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        label = rng.integers(0, 2, n)
        values = rng.uniform(1, 10, (n, len(features))) + label[:, None]
        columns = {"id": np.arange(start, start + n, dtype=np.int64)}
        columns |= {name: values[:, j] for j, name in enumerate(features)}
        columns["label"] = label.astype(np.int64)
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=65536)
    writer.close()


class Cgroup:
    """A memory cgroup (v2, else v1) that the benchmark's commands can be started in."""

    def __init__(self, limit_gb: float) -> None:
        name = f"memory-bench-{os.getpid()}"
        v2 = Path("/sys/fs/cgroup/unified")
        if (v2 / "cgroup.controllers").is_file() and "memory" in (
            v2 / "cgroup.controllers"
        ).read_text():
            self.path, limit_file = v2 / name, "memory.max"
        else:
            self.path, limit_file = Path("/sys/fs/cgroup/memory") / name, "memory.limit_in_bytes"
        self.path.mkdir()
        (self.path / limit_file).write_text(str(int(limit_gb * 2**30)))

    def prefix(self) -> list[str]:
        join = f'echo $$ > {self.path / "cgroup.procs"} && exec "$@"'
        return ["sh", "-c", join, "sh"]

    def remove(self) -> None:
        self.path.rmdir()


def peak_rss_mb(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, float, float]:
    """Exit code, peak RSS (MiB) and seconds of ``command``, measured in a fresh child."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
        "time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *command], cwd=cwd, env=env, capture_output=True, text=True
    )
    code, rss, seconds = out.stdout.split()
    return int(code), float(rss), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="raw rows of the small table")
    parser.add_argument("--runs", type=int, default=3, help="train runs per table")
    parser.add_argument("--limit-gb", type=float, default=None, help="memory cgroup limit")
    parser.add_argument("--workdir", type=Path, default=None, help="where the tables go")
    args = parser.parse_args()
    import copier

    work = Path(args.workdir or tempfile.mkdtemp(prefix="memory-bench-"))
    project = work / "project"
    if not project.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copier.run_copy(
                str(ROOT),
                project,
                data={"task": "tabular_classification"},
                defaults=True,
                quiet=True,
                vcs_ref="HEAD",
            )
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "OMP_NUM_THREADS": "1"}
    sys.path.insert(0, str(project / "src"))
    from my_dl_project.data.schemas import BREAST_CANCER_FEATURES

    cgroup = Cgroup(args.limit_gb) if args.limit_gb else None
    try:
        for label, rows in (("1x", args.rows), ("10x", 10 * args.rows)):
            raw = work / f"raw-{rows}.parquet"
            if not raw.exists():
                write_raw(raw, rows, BREAST_CANCER_FEATURES)
            data = [f"paths.data_dir={work}/data-{rows}", f"paths.reports_dir={work}/reports"]
            data += [f"data.source={raw}", "data.stream=true"]
            inside = cgroup.prefix() if cgroup and label == "10x" else []
            module = [sys.executable, "-m"]
            for step in ("prepare", "validate"):
                code, rss, seconds = peak_rss_mb(
                    [*inside, *module, f"{PACKAGE}.data.{step}", *TRAIN, *data], work, env
                )
                print(f"{label} {step}: exit {code}, peak RSS {rss:.0f} MiB, {seconds:.0f} s")
            train_file = Path(f"{work}/data-{rows}/processed/train.parquet")
            meta = pq.ParquetFile(train_file).metadata
            size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            print(
                f"{label}: training split {meta.num_rows:,} rows, {size / 2**20:.0f} MiB "
                f"uncompressed, {meta.num_row_groups} row groups"
            )
            peaks, times = [], []
            for run in range(args.runs):
                out = [f"paths.output_dir={work}/run-{label}-{run}-{time.time_ns()}"]
                code, rss, seconds = peak_rss_mb(
                    [*inside, *module, f"{PACKAGE}.train", *TRAIN, *data, *out], work, env
                )
                assert code == 0, f"train exited {code}"
                peaks.append(rss)
                times.append(seconds)
            print(
                f"{label} train (streamed, {args.runs} runs): peak RSS median "
                f"{statistics.median(peaks):.0f} MiB (range {min(peaks):.0f}-{max(peaks):.0f}), "
                f"{statistics.median(times):.0f} s"
            )
            if cgroup and label == "10x":
                out = [f"paths.output_dir={work}/run-memory-{time.time_ns()}"]
                in_memory = [*data[:-1], "data.stream=false"]
                code, rss, seconds = peak_rss_mb(
                    [*inside, *module, f"{PACKAGE}.train", *TRAIN, *in_memory, *out], work, env
                )
                print(
                    f"10x train in memory (data.stream=false) under the {args.limit_gb} GiB "
                    f"limit: exit {code} (-9: killed for memory), peak RSS {rss:.0f} MiB"
                )
    finally:
        if cgroup:
            cgroup.remove()


if __name__ == "__main__":
    main()
