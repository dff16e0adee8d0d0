"""Several trackers at once: ``logger=multi`` (``configs/logger/multi.yaml``).

Each entry of ``logger.loggers`` is one of the logger configs (an entry set to null is left
out). They share one run id, the one kept in checkpoints: the lead logger's. A logger that
chooses its own ids (MLflow) leads; the others (TensorBoard, CSV, W&B, which take a
``resume`` argument) follow, opening their run under the lead's id, or continuing it. Each call
goes to every logger that can take it: a call a tracker has no method for (``log_model``, say)
is skipped for that tracker only.
"""

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def _follows(config: Any) -> bool:
    """Whether the logger ``config`` builds can open a run under an id it is given."""
    from hydra.utils import get_class

    target = get_class(config["_target_"])
    return "resume" in inspect.signature(target).parameters


class MultiLogger:
    """The loggers of ``loggers`` (name -> config) behind one ``Logger``, the lead one first."""

    def __init__(
        self,
        loggers: Mapping[str, Any],
        run_id: str | None = None,
        run_name: str | None = None,
    ) -> None:
        from hydra.utils import instantiate

        configs = {name: config for name, config in loggers.items() if config is not None}
        if not configs:
            raise ConfigError("logger=multi needs at least one entry in logger.loggers.")
        leads = [name for name, config in configs.items() if not _follows(config)]
        if len(leads) > 1:
            raise ConfigError(
                f"logger.loggers: {', '.join(leads)} each choose their own run ids, so they "
                "cannot share one: keep one of them (the others can be TensorBoard, CSV, W&B)."
            )
        order = leads + [name for name in configs if name not in leads]
        kwargs = {"run_id": run_id} if run_id else {"run_name": run_name}
        first = instantiate(configs[order[0]], **kwargs)
        self.loggers = {order[0]: first}
        for name in order[1:]:
            shared = {"run_id": first.run_id} if first.run_id else {}
            run = instantiate(configs[name], **shared, run_name=run_name, resume="allow")
            self.loggers[name] = run
        self.run_id = first.run_id
        self.resumed = getattr(first, "resumed", False)
        self.log_checkpoints = any(lg.log_checkpoints for lg in self.loggers.values())
        self.log_model_enabled = any(
            hasattr(lg, "log_model") and getattr(lg, "log_model_enabled", True)
            for lg in self.loggers.values()
        )

    @classmethod
    def of(cls, loggers: Mapping[str, Any]) -> "MultiLogger":
        """Loggers already open (a search's trials: each one's ``child``)."""
        self = cls.__new__(cls)
        self.loggers = dict(loggers)
        first = next(iter(self.loggers.values()))
        self.run_id, self.resumed = first.run_id, getattr(first, "resumed", False)
        self.log_checkpoints = any(lg.log_checkpoints for lg in self.loggers.values())
        self.log_model_enabled = any(
            hasattr(lg, "log_model") and getattr(lg, "log_model_enabled", True)
            for lg in self.loggers.values()
        )
        return self

    def _each(self, call: str, *args: Any, **kwargs: Any) -> None:
        for logger in self.loggers.values():
            method = getattr(logger, call, None)
            if method is not None:
                method(*args, **kwargs)

    @property
    def outage(self) -> str | None:
        """What a tracker that went away mid-run says (``check_sent``), if one did."""
        return next(
            filter(None, (getattr(lg, "outage", None) for lg in self.loggers.values())), None
        )

    def keep_unsent_in(self, run_dir: Path) -> None:
        self._each("keep_unsent_in", run_dir)

    def rewind(self, step: int) -> None:
        self._each("rewind", step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._each("log_params", params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._each("log_metrics", metrics, step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._each("set_tags", tags)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """To each logger; checkpoints only to those that keep them (``log_checkpoints``)."""
        for logger in self.loggers.values():
            if artifact_path == "checkpoints" and not logger.log_checkpoints:
                continue
            method = getattr(logger, "log_artifact", None)
            if method is not None:
                method(path, artifact_path)

    def log_table(self, table: Any, artifact_file: str) -> None:
        self._each("log_table", table, artifact_file)

    def log_dataset(self, frame: Any, name: str, digest: str, source: str, context: str) -> None:
        self._each("log_dataset", frame, name, digest, source, context)

    def log_model(self, model: Any, input_example: Any) -> None:
        for logger in self.loggers.values():
            if getattr(logger, "log_model_enabled", True) and hasattr(logger, "log_model"):
                logger.log_model(model, input_example)

    def child(self, run_name: str) -> "MultiLogger":
        """Each logger's child run (a search's trial), under the lead child's run id."""
        (lead_name, lead), *others = self.loggers.items()
        children = {lead_name: lead.child(run_name)}
        shared = children[lead_name].run_id
        for name, logger in others:
            takes_id = "run_id" in inspect.signature(logger.child).parameters
            kwargs = {"run_id": shared} if takes_id and shared else {}
            children[name] = logger.child(run_name, **kwargs)
        return MultiLogger.of(children)

    def finish(self, status: str = "FINISHED") -> None:
        """Every logger's run is closed, even when one of them fails (the first error is raised
        once all are closed)."""
        errors = []
        for logger in self.loggers.values():
            try:
                logger.finish(status)
            except Exception as error:  # the others still close
                errors.append(error)
        if errors:
            raise errors[0]
