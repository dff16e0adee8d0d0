"""The TensorBoard logger: scalars, parameters, text and images in event files.

A run is ``<save_dir>/<run_id>/``; ``tensorboard --logdir logs/tensorboard`` shows every run.
What goes where: metrics are scalars (Scalars tab); the parameters are hyperparameters (HParams
tab) and a table (Text tab, ``params``); tags, datasets and tables (best and worst predictions,
the data's first rows) are text (``tags/...``, ``datasets/...``, tables by name); images among
the files a run keeps (``curves.png``, prediction grids) are images (Images tab). TensorBoard
keeps no other files (checkpoints, metrics.json stay in the run's output folder) and no model.

A resumed training writes a new event file in the same folder, starting with a purge at the
step after its checkpoint: TensorBoard hides what an interrupted run had logged after that
step, so each step shows once (``rewind``).
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .run_folder import FolderRuns, missing_package, open_run_folder
from .run_info import environment, flatten, git_state, mask_secrets

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TABLE_ROWS = 50  # the first rows of a table shown as text; the whole table is in MLflow or CSV


class TensorBoardLogger(FolderRuns):
    """One run in ``<save_dir>/<run_id>/``, opened on construction, closed by ``finish``."""

    log_model_enabled = False  # TensorBoard keeps no model
    log_checkpoints = False  # nor files other than images

    def __init__(
        self,
        save_dir: str = "logs/tensorboard",
        run_id: str | None = None,
        run_name: str | None = None,
        flush_secs: int = 10,
        resume: str = "must",
        parent_run_id: str | None = None,
    ) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package
            raise missing_package("tensorboard", "tensorboard") from None
        self._settings = {"save_dir": save_dir, "flush_secs": flush_secs}
        self._writer_class = SummaryWriter
        self.folder, self.run_id, self.resumed = open_run_folder(
            save_dir, run_id, run_name, resume, "TensorBoard"
        )
        self._writer = SummaryWriter(str(self.folder), flush_secs=flush_secs)
        self._step = 0  # the last step logged: where images and tables are shown
        tags = {**git_state(), **environment()}
        if run_name:
            tags["run_name"] = run_name
        if parent_run_id:
            tags["parent_run_id"] = parent_run_id
        self.set_tags(tags)

    def rewind(self, step: int) -> None:
        """Hide what the run logged after ``step`` (a training resumed from the checkpoint of
        that step logs it again): a new event file starting with TensorBoard's purge."""
        self._writer.close()
        flush_secs = self._settings["flush_secs"]
        self._writer = self._writer_class(
            str(self.folder), flush_secs=flush_secs, purge_step=step + 1
        )
        self._step = step

    def log_params(self, params: Mapping[str, Any]) -> None:
        """The flattened config, secrets masked: the HParams tab and a table in the Text tab."""
        from torch.utils.tensorboard.summary import hparams

        values = mask_secrets(flatten(params))
        scalars = {
            k: v if isinstance(v, bool | int | float | str) else json.dumps(v, default=str)
            for k, v in values.items()
        }
        writer = self._writer._get_file_writer()
        for summary in hparams(scalars, {}):
            writer.add_summary(summary)
        rows = pd.DataFrame({"name": list(values), "value": [str(v) for v in values.values()]})
        self._writer.add_text("params", markdown(rows, rows=len(rows)), self._step)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self._writer.add_scalar(name, float(value), step)
        self._step = step

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for name, value in tags.items():
            self._writer.add_text(f"tags/{name}", str(value), self._step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Images (a file, or those in a folder) in the Images tab, as ``<artifact_path>/<stem>``;
        TensorBoard keeps no other file."""
        source = Path(path)
        files = sorted(source.rglob("*")) if source.is_dir() else [source]
        for image in (f for f in files if f.suffix.lower() in IMAGE_SUFFIXES):
            import numpy as np
            from PIL import Image

            with Image.open(image) as opened:
                pixels = np.asarray(opened.convert("RGB"))
            tag = "/".join(filter(None, [artifact_path, image.stem]))
            self._writer.add_image(tag, pixels, self._step, dataformats="HWC")

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        """The table's first rows as text, named ``artifact_file`` without its suffix."""
        self._writer.add_text(str(Path(artifact_file).with_suffix("")), markdown(table), self._step)

    def log_dataset(
        self, frame: pd.DataFrame, name: str, digest: str, source: str, context: str
    ) -> None:
        rows, columns = frame.shape
        text = f"{context}: `{source}`, version (md5) `{digest}`, {rows} rows, {columns} columns"
        self._writer.add_text(f"datasets/{name}", text, self._step)

    def finish(self, status: str = "FINISHED") -> None:
        self._writer.add_text("tags/status", status, self._step)
        self._writer.close()


def markdown(table: pd.DataFrame, rows: int = TABLE_ROWS) -> str:
    """A markdown table (TensorBoard's Text tab draws it) of the first ``rows`` rows."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    head = table.head(rows)
    lines = ["| " + " | ".join(cell(c) for c in head.columns) + " |"]
    lines.append("|" + "---|" * len(head.columns))
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in head.itertuples(index=False)
    ]
    if len(table) > rows:
        lines.append(f"\n({rows} of {len(table)} rows)")
    return "\n".join(lines)
