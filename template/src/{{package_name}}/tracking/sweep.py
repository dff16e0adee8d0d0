"""A sweep's summary: ``<sweep dir>/summary.csv``, one row per job of ``train -m ...``.

Each row: the job's number (its folder), the value of each swept key, how it ended, and its
final metrics (``metrics.json``). ``SweepSummary``, a Hydra callback
(``configs/hydra/default.yaml``), rewrites the file as each job starts and ends, so that it is
there, whole, when the sweep stops early (a job a signal stopped stays ``not finished``). Under
torchrun only rank 0 writes it, into rank 0's sweep folder: the one every rank's jobs write into
(``train.run_dir``).
"""

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SUMMARY = "summary.csv"


def swept_keys(overrides: Iterable[str]) -> list[str]:
    """The keys a sweep's command line gives several values (``seed=1,2``, ``range(3)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [o.key_or_group for o in parsed if o.is_sweep_override()]


def started_row(job: int, overrides: Iterable[str], keys: list[str]) -> dict[str, Any]:
    """A job's row as it starts: its number, its values of the swept keys, ``not finished``
    (what the row keeps when a signal stops the sweep during the job)."""
    values = dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
    return {"job": job, **{key: values.get(key, "") for key in keys}, "status": "not finished"}


def job_row(job: int, job_return: JobReturn, keys: list[str], folder: Path) -> dict[str, Any]:
    """One job's row: its number, its values of the swept keys, how it ended, its metrics."""
    row = started_row(job, job_return.overrides or (), keys)
    if job_return.status == JobStatus.COMPLETED:
        row["status"] = "done"
    else:  # the job's own message was printed; its exit code, when it gave one (JobFailed)
        code = getattr(job_return._return_value, "exit_code", None)
        row["status"] = "failed" if code is None else f"failed (exit {code})"
    metrics = folder / "metrics.json"
    if job_return.status == JobStatus.COMPLETED and metrics.is_file():
        saved = json.loads(metrics.read_text(encoding="utf-8"))
        row |= {k: f"{v:.6g}" for k, v in saved.items() if isinstance(v, (int, float))}
    return row


def write_summary(path: Path, rows: Mapping[int, Mapping[str, Any]]) -> None:
    """The rows, in job order, as CSV; the columns of every row (a failed job has no metrics)."""
    columns: dict[str, None] = {}
    for job in sorted(rows):
        columns |= dict.fromkeys(rows[job])
    partial = path.with_name(f".{path.name}.tmp")
    with partial.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(rows[job] for job in sorted(rows))
    partial.replace(path)  # a reader never sees half a table


class SweepSummary(Callback):
    """Hydra callback: ``summary.csv`` in the sweep folder, rewritten as each job ends."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._rows: dict[int, dict[str, Any]] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._keys = swept_keys(OmegaConf.select(config, "hydra.overrides.task") or [])
        self._rows = {}

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _writes_summary(config):
            job = int(OmegaConf.select(config, "hydra.job.num"))
            overrides = OmegaConf.select(config, "hydra.overrides.task") or []
            self._rows[job] = started_row(job, overrides, self._keys)
            self._write(config)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if _writes_summary(config):
            job = int(OmegaConf.select(config, "hydra.job.num"))
            folder = Path(str(OmegaConf.select(config, "hydra.runtime.output_dir")))
            self._rows[job] = job_row(job, job_return, self._keys, folder)
            self._write(config)

    def _write(self, config: DictConfig) -> None:
        sweep = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        if sweep.is_dir():
            write_summary(sweep / SUMMARY, self._rows)


def _writes_summary(config: DictConfig) -> bool:
    """In a sweep, on rank 0 only: its sweep folder is the one every rank's jobs write into."""
    multirun = str(OmegaConf.select(config, "hydra.mode")) == "RunMode.MULTIRUN"
    return multirun and int(os.environ.get("RANK", "0")) == 0
