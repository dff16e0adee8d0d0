"""The Weights & Biases logger: one W&B run, online (``wandb login`` first) or offline.

``logger.mode=offline`` (or ``WANDB_MODE=offline``) records everything under
``<save_dir>/wandb/offline-run-*`` and never touches the network; ``wandb sync <folder>`` sends
it later. What goes where: the parameters and tags are the run's config (tags as ``tags.*``), the
data the run read is ``datasets.*`` in it; metrics are plotted against ``trainer/global_step``
(the trainer's optimizer step, logged beside each metric), so a resumed run and ``evaluate``
extend the same curves; tables are W&B tables; files the run keeps (curves, reports; checkpoints
only with ``log_checkpoints``) are the run's files. No model: MLflow keeps the servable model.

A resumed training reopens its run (``resume="allow"``, the id kept in the checkpoint). W&B keeps
history rows; it cannot drop those an interrupted run logged after its last checkpoint, so those
steps appear twice (offline, each resume is a folder of its own with the same run id: sync the
first, then the others with ``wandb sync --append``). docs/how-to/trackers.md says more.
"""

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from .base import TrackingError
from .run_folder import missing_package
from .run_info import environment, flatten, git_state, mask_secrets, mask_text

STEP = "trainer/global_step"
#: What ``wandb.init`` accepts as its ``mode`` and its ``resume``.
Mode = Literal["online", "offline", "disabled", "shared"]
Resume = Literal["allow", "never", "must", "auto"]


class WandbLogger:
    """One W&B run: opened (or reopened) on construction, closed by ``finish``."""

    log_model_enabled = False  # no servable model format here: MLflow's job

    def __init__(
        self,
        project: str,
        save_dir: str = "logs",
        run_id: str | None = None,
        run_name: str | None = None,
        entity: str | None = None,
        mode: Mode | None = None,
        group: str | None = None,
        log_checkpoints: bool = False,
        resume: Resume = "allow",
        parent_run_id: str | None = None,
    ) -> None:
        try:
            import wandb
        except ImportError:
            raise missing_package("wandb", "wandb") from None
        self._wandb = wandb
        self._settings: dict[str, Any] = {  # what a child run (``child``) is opened with
            "project": project,
            "save_dir": save_dir,
            "entity": entity,
            "mode": mode,
            "log_checkpoints": log_checkpoints,
        }
        self.log_checkpoints = log_checkpoints
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")  # its banner; the user's choice wins
        try:
            self._run = wandb.init(
                project=project,
                entity=entity,
                dir=save_dir,
                id=run_id,
                name=run_name,
                group=group,
                mode=mode,
                # A resumed training continues its run; "allow" makes it when it is not there
                # (a logger following another's run id: tracking/multi.py).
                resume=resume if run_id else None,
                reinit="create_new",  # a search's trials run beside the search's own run
            )
        except Exception as error:  # not logged in, no network, a refused id: say which
            raise TrackingError(
                f"W&B could not open a run in project {project!r}: "
                f"{type(error).__name__}: {mask_text(str(error))}. Log in (`wandb login`) or "
                "run offline: logger.mode=offline (or WANDB_MODE=offline)."
            ) from error
        self.run_id = self._run.id
        self.resumed = run_id is not None
        self._run.define_metric(STEP)
        self._run.define_metric("*", step_metric=STEP, step_sync=True)
        self._step = 0
        self._tags: dict[str, str] = {}
        tags = {**git_state(), **environment()}
        if parent_run_id:
            tags["parent_run_id"] = parent_run_id
        self.set_tags(tags)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """The flattened config, secrets masked; on resume changed values take the new one."""
        values = mask_secrets(flatten(params))
        self._run.config.update(values, allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._run.log({**{k: float(v) for k, v in metrics.items()}, STEP: step})
        self._step = step

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._tags.update({f"tags.{k}": str(v) for k, v in tags.items()})
        self._run.config.update(self._tags, allow_val_change=True)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A file or a folder among the run's files, in ``[artifact_path/]``."""
        source = Path(path)
        target = Path(self._run.dir) / (artifact_path or "") / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        self._run.save(str(target / "*" if source.is_dir() else target), base_path=self._run.dir)

    def log_table(self, table: pd.DataFrame, artifact_file: str) -> None:
        """A W&B table named ``artifact_file`` without its suffix."""
        key = str(Path(artifact_file).with_suffix(""))
        self._run.log({key: self._wandb.Table(dataframe=table), STEP: self._step})

    def log_dataset(
        self, frame: pd.DataFrame, name: str, digest: str, source: str, context: str
    ) -> None:
        record: dict[str, str | int] = {"digest": digest, "source": source, "context": context}
        record |= {"rows": len(frame), "columns": len(frame.columns)}
        self._run.config.update({f"datasets.{name}": record}, allow_val_change=True)

    def child(self, run_name: str, run_id: str | None = None) -> "WandbLogger":
        """A run of its own in the same project, grouped under this one (a search's trial);
        ``run_id``: the id to open it under (another logger's, ``tracking/multi.py``)."""
        return WandbLogger(
            **self._settings,
            run_id=run_id,
            run_name=run_name,
            group=self.run_id,
            parent_run_id=self.run_id,
        )

    def finish(self, status: str = "FINISHED") -> None:
        self.set_tags({"status": status})
        self._run.finish(exit_code=0 if status == "FINISHED" else 1)
