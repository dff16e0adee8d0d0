"""Train a model: ``python -m <package>.train [overrides]``.

Several processes: ``torchrun --nproc_per_node N -m <package>.train [overrides]`` (one machine),
or on each of M machines ``torchrun --nnodes M --nproc_per_node N --rdzv-backend c10d
--rdzv-endpoint HOST:PORT --rdzv-id JOB -m <package>.train paths.output_dir=SHARED/run``.

Exit codes: 0 success; 2 bad config (every key is checked first, ``settings.py``; a misspelled
key or option too, ``config.entry_point``); 3 missing or unusable checkpoint, or a resume under
a config it cannot honour (``training/resume.py``); 4 non-finite loss or weights; 5 missing
or invalid data (unprepared data is found before a tracking run opens); 6 the
tracking server cannot be reached (checked before training starts); 128 + N stopped by signal N
(SIGTERM, SIGUSR1, SIGINT: Ctrl-C) after saving a checkpoint: resume with ``ckpt_path=last
paths.output_dir=<the run's folder>``. A second Ctrl-C (a second or more after the first) stops
at once without saving (130; the checkpoints already written stay whole). Another run busy in the
same output folder, or a new run in a folder holding an earlier run's checkpoints, exits with 2
before writing anything there (``training/run_lock.py``).

With ``trainer.strategy=fsdp`` (torchrun, 2 or more processes) checkpoints are sharded folders
(``checkpoints/step-N/``); ``python -m <package>.consolidate <folder>`` writes the single file
that evaluate, predict and export read (docs/how-to/fsdp.md).

A tracking server that stops answering during the run does not stop it: its outputs are written,
what the server missed is kept in ``<run folder>/tracking-unsent/``, and the exit code is 6;
``python -m <package>.tracking.resend <run folder>`` sends it later (``docs/tracking.md``).

A sweep, ``train -m seed=1,2,3`` (also under torchrun), runs each job in its own folder under
``multirun/train/<date>/<job>``; in one process a failed job does not stop the next, and the
command exits with the first failed job's code (``config.sweep_goes_on``,
``docs/how-to/multirun.md``).
"""

import shutil
import signal
import sys
from pathlib import Path

from omegaconf import DictConfig

from .config import as_dict, check_settings, entry_point, holds_only_hydra_files


@entry_point("train")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "train")  # before anything is imported, opened or written

    # Imported here so that `--help` and config errors answer without importing torch.
    from .data.record import require_validated
    from .errors import Interrupted, TrackingError
    from .tracking.base import check_sent
    from .training import distributed, run_lock
    from .training.trainer import fit

    logger = lock = output_dir = None
    try:
        data_md5 = require_validated(cfg)  # prepared, readable and validated, before a run opens
        warn_if_not_servable(cfg)
        ctx = distributed.setup(cfg.trainer.accelerator)
        output_dir = run_dir(cfg, distributed)
        lock = run_lock.hold(output_dir, cfg.ckpt_path, ctx)  # before anything is written there
        if ctx.is_main:  # one tracking run per job; a resumed job continues its run
            keep_resolved_config(cfg)
            logger = open_run(cfg, output_dir, data_md5)
        metrics = fit(cfg, output_dir, logger, ctx)
        if ctx.is_main:
            assert logger is not None  # the main process opened the run above
            record_outputs(cfg, output_dir, logger)
            logger.finish("FINISHED")
            check_sent(logger)  # exit 6 if the tracker went away: what it missed is kept
    except KeyboardInterrupt:  # Ctrl-C outside the training loop, or a second one inside it
        if logger is not None:
            logger.finish("KILLED")
        raise Interrupted(signal.SIGINT, interrupted(output_dir)) from None
    except Exception as error:  # the message and the exit code: errors.reported
        if logger is not None and not isinstance(error, TrackingError):  # the tracker is gone
            logger.finish("KILLED" if isinstance(error, Interrupted) else "FAILED")
        raise
    finally:
        if lock is not None:
            lock.release()
        distributed.cleanup()
    if ctx.is_main:
        summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if "/" in k)
        print(f"done: {summary}\nwrote {output_dir}/metrics.json")


def interrupted(output_dir: Path | None) -> str:
    """What a Ctrl-C that could not wait for a checkpoint leaves, and how to go on."""
    if output_dir is None:
        return "interrupted (SIGINT) before training started; no checkpoint was written."
    return (
        f"interrupted (SIGINT) without saving a checkpoint at this step; the newest checkpoint "
        f"in {output_dir}/checkpoints (if any) is whole. Resume with ckpt_path=last "
        f"paths.output_dir={output_dir}."
    )


def keep_resolved_config(cfg: DictConfig) -> None:
    """The run's resolved config in ``<paths.output_dir>/.hydra/config.yaml``, when it is set.

    Hydra keeps it in its own run folder; a run with ``paths.output_dir`` elsewhere (the
    pipeline's ``outputs/pipeline``) keeps its checkpoints there, and the config they came from
    beside them. Written once the settings are checked: a config error leaves nothing behind.
    Secrets masked, as everywhere the config is written (``tracking/run_info.py``).
    """
    if not cfg.paths.output_dir:
        return
    from omegaconf import OmegaConf

    from .tracking.run_info import mask_config

    folder = Path(cfg.paths.output_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.create(mask_config(OmegaConf.to_container(cfg, resolve=True)))
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(config), encoding="utf-8")


def run_dir(cfg: DictConfig, distributed) -> Path:
    """``paths.output_dir``, or Hydra's run folder of rank 0, the same for every rank.

    Each rank of a torchrun job composes its own Hydra run folder from the clock, so ranks that
    start a second apart would write to different folders: rank 0's wins, and the other ranks
    remove the folder Hydra made for them if it holds nothing but Hydra's own files. In a sweep
    (``train -m``), that is the job's folder (``<sweep dir>/<job number>``), agreed job by job,
    and the other ranks' sweep folder goes too once it holds nothing but ``multirun.yaml``.
    """
    if cfg.paths.output_dir:
        return Path(cfg.paths.output_dir)
    from hydra.core.hydra_config import HydraConfig

    own = Path(HydraConfig.get().runtime.output_dir)
    sweep = sweep_dir()
    if cfg.ckpt_path == "last" and sweep is None:
        print(
            "train: warning: ckpt_path=last looks for checkpoints in this run's new folder; to "
            "resume a run, also pass paths.output_dir=<its folder>.",
            file=sys.stderr,
        )
    shared = Path(distributed.broadcast_object(str(own)))
    if cfg.ckpt_path == "last" and sweep is not None and not (shared / "checkpoints").is_dir():
        print(
            f"train: warning: ckpt_path=last: this job's folder {shared} has no checkpoints, so "
            "the job starts afresh (a sweep resumes in the folder hydra.sweep.dir=... names).",
            file=sys.stderr,
        )
    if shared != own and holds_only_hydra_files(own, "train"):
        shutil.rmtree(own, ignore_errors=True)
        if sweep is not None and sweep in own.parents and sweep not in shared.parents:
            remove_folders_up_to(own.parent, sweep)
    return shared


def sweep_dir() -> Path | None:
    """The sweep's folder when this job is one of a sweep (``train -m``), else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():  # main(cfg) from a test or a notebook
        return None
    hydra = HydraConfig.get()
    return Path(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None


def remove_folders_up_to(folder: Path, top: Path) -> None:
    """``folder`` and its parents up to ``top``, each if it holds nothing (``top``: nothing but
    Hydra's ``multirun.yaml``); a folder holding anything else stays, with its parents."""
    while folder != top.parent:
        left = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        if left - ({"multirun.yaml"} if folder == top else set()):
            return
        shutil.rmtree(folder, ignore_errors=True)
        folder = folder.parent


def sweep_tags() -> dict[str, str]:
    """Tags that tie a sweep's tracking runs together: its folder, the job, what it changed."""
    sweep = sweep_dir()
    if sweep is None:
        return {}
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    overrides = " ".join(hydra.overrides.task)
    return {"sweep": str(sweep), "sweep_job": str(hydra.job.num), "sweep_overrides": overrides}


def resumed_state(cfg: DictConfig, output_dir: Path) -> dict:
    """The trainer state kept in the checkpoint this run resumes from (empty when starting).

    A changed config the resume cannot honour is refused here, before the tracking run is
    reopened (and marked failed), as well as in the trainer (``training/resume.py``).
    """
    if cfg.ckpt_path is None:
        return {}
    import warnings

    from .training import checkpoint, resume

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trainer reports unreadable checkpoints itself
        resumed = checkpoint.resolve(cfg.ckpt_path, output_dir / "checkpoints")
    if not resumed:
        return {}
    resume.check(resumed[0].get("config"), as_dict(cfg, resolve=True), resumed[1])
    return resumed[0]["trainer_state"]


def open_run(cfg: DictConfig, output_dir: Path, data_md5: str | None = None):
    """The tracking run: a new one, or the checkpoint's run reopened, and the data it reads
    (``data_md5``: the digest ``require_validated`` already took of those files)."""
    from .tracking.base import keep_unsent_in, open_logger, rewind
    from .tracking.records import record_data

    state = resumed_state(cfg, output_dir)
    run_id = state.get("run_id")
    logger = open_logger(cfg.logger, run_id, "train")
    keep_unsent_in(logger, output_dir)  # if the tracker goes away mid-run (tracking.resend)
    if run_id:
        logger.set_tags({"resumed_at_step": state.get("global_step", "unknown")})
        if "global_step" in state:  # what was logged after the checkpoint is logged again
            rewind(logger, state["global_step"])
    if sweep_tags():  # a job of a sweep is tagged with it (docs/how-to/multirun.md)
        logger.set_tags(sweep_tags())
    record_data(logger, cfg, data_md5)
    return logger


def record_outputs(cfg: DictConfig, output_dir: Path, logger) -> None:
    """After training: metrics.json, checkpoints, the model (best weights, taking raw rows) and
    the training curves (curves.png, also written with logger=none) to the tracker."""
    from .inference import served_model
    from .tracking.records import record_curves
    from .tracking.records import record_outputs as record

    if not cfg.trainer.fast_dev_run:  # one step has no curve (and matplotlib costs a second)
        record_curves(logger, output_dir)
    record(logger, output_dir, lambda best: served_model(best, cfg))


def warn_if_not_servable(cfg: DictConfig) -> None:
    """A warning, before training, when predict, evaluate and export will refuse the model:
    they rebuild only the classes ``models/__init__.py`` exports (``inference.model_classes``)."""
    from .inference import model_classes

    target = cfg.model.get("_target_")
    if target not in model_classes():
        print(
            f"train: warning: model._target_={target} is not exported by src/<package>/models/"
            "__init__.py (__all__), so evaluate, predict and export will refuse its "
            "checkpoints: a checkpoint may only rebuild the project's own models. Export the "
            "class there (docs: add a model).",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
