"""The CSV logger: a run is a folder of plain files, readable with pandas and nothing else.

``<save_dir>/<run_id>/`` holds ``metrics.csv`` (one row per value: ``step,name,value,time``),
``params.csv`` and ``tags.csv`` (``name,value``), ``datasets.csv`` (the data the run read, with
its version), ``tables/`` (each table as a CSV file) and ``artifacts/`` (copies of the files the
run keeps: curves, reports; checkpoints only with ``log_checkpoints``). No model: MLflow keeps the
servable model (``logger=multi`` runs both). A resumed training appends to the same folder, first
dropping the rows of steps after its checkpoint (``rewind``), so no step is there twice.
"""

import csv
import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .run_folder import FolderRuns, open_run_folder
from .run_info import environment, flatten, git_state, installed_packages, mask_secrets

METRIC_COLUMNS = ["step", "name", "value", "time"]


class CsvLogger(FolderRuns):
    """One run in ``<save_dir>/<run_id>/``, opened on construction, closed by ``finish``."""

    log_model_enabled = False  # no servable model format here: MLflow's job

    def __init__(
        self,
        save_dir: str = "logs/csv",
        run_id: str | None = None,
        run_name: str | None = None,
        log_checkpoints: bool = False,
        resume: str = "must",
        parent_run_id: str | None = None,
    ) -> None:
        self._settings = {"save_dir": save_dir, "log_checkpoints": log_checkpoints}
        self.folder, self.run_id, self.resumed = open_run_folder(
            save_dir, run_id, run_name, resume, "CSV"
        )
        self.log_checkpoints = log_checkpoints
        self._metrics = self.folder / "metrics.csv"
        if not self._metrics.is_file():
            self._metrics.write_text(",".join(METRIC_COLUMNS) + "\n", encoding="utf-8")
        tags = {**git_state(), **environment(), "status": "RUNNING"}
        if run_name:
            tags["run_name"] = run_name
        if parent_run_id:
            tags["parent_run_id"] = parent_run_id
        self.set_tags(tags)
        if not self.resumed:
            self._write(
                self.folder / "artifacts/environment/requirements.txt", installed_packages()
            )

    def rewind(self, step: int) -> None:
        """Forget the metrics of steps after ``step``: a training resumed from the checkpoint of
        that step logs them again (a run killed after its last checkpoint had logged some)."""
        frame = pd.read_csv(self._metrics)
        kept = frame[frame["step"] <= step]
        if len(kept) < len(frame):
            kept.to_csv(self._metrics, index=False)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """The flattened config, secrets masked; on resume new keys are added, changed ones
        take the new value (``ckpt_path``, say)."""
        self._update("params.csv", mask_secrets(flatten(params)))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = time.time()
        with self._metrics.open("a", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerows([step, name, float(value), now] for name, value in metrics.items())

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._update("tags.csv", tags)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A copy of a file or a folder in ``artifacts/[artifact_path/]``."""
        source = Path(path)
        target = self.folder / "artifacts" / (artifact_path or "") / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        """``tables/<artifact_file>`` as CSV (``data/train_head.json`` -> ``.csv``)."""
        target = (self.folder / "tables" / artifact_file).with_suffix(".csv")
        target.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(target, index=False)

    def log_dataset(
        self, frame: pd.DataFrame, name: str, digest: str, source: str, context: str
    ) -> None:
        """A row of ``datasets.csv``: the name, version (the DVC md5), where it lives, its
        shape; one row per name and context."""
        path = self.folder / "datasets.csv"
        row: dict[str, str | int] = {
            "name": name,
            "context": context,
            "digest": digest,
            "source": source,
        }
        row |= {"rows": len(frame), "columns": len(frame.columns)}
        rows = pd.read_csv(path).to_dict("records") if path.is_file() else []
        rows = [r for r in rows if (r["name"], r["context"]) != (name, context)] + [row]
        pd.DataFrame(rows).to_csv(path, index=False)

    def finish(self, status: str = "FINISHED") -> None:
        self.set_tags({"status": status})

    def _update(self, name: str, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into the ``name,value`` file ``name`` (rewritten whole: it is small)."""
        path = self.folder / name
        kept: dict[str, str] = {}
        if path.is_file():
            kept = dict(pd.read_csv(path, dtype=str, keep_default_na=False).values)
        kept.update({key: _text(value) for key, value in values.items()})
        frame = pd.DataFrame({"name": list(kept), "value": list(kept.values())})
        frame.to_csv(path, index=False)

    @staticmethod
    def _write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _text(value: Any) -> str:
    """Strings as they are, everything else as JSON (``null``, ``[1, 2]``), as MLflow does."""
    return value if isinstance(value, str) else json.dumps(value)
