"""Train a model: ``python -m <package>.train [overrides]``.

Several processes: ``torchrun --nproc_per_node N -m <package>.train [overrides]`` (one machine),
or on each of M machines ``torchrun --nnodes M --nproc_per_node N --rdzv-backend c10d
--rdzv-endpoint HOST:PORT --rdzv-id JOB -m <package>.train paths.output_dir=SHARED/run``.

Exit codes: 0 success; 2 bad config (every key is checked first, ``settings.py``; a misspelled
key or option too, ``config.entry_point``); 3 missing or unusable checkpoint; 4 non-finite loss;
5 missing or invalid data (unprepared data is found before a tracking run opens); 6 the
tracking server cannot be reached (checked before training starts); 128 + N stopped by signal N
(SIGTERM, SIGUSR1) after saving a checkpoint: resume with ``ckpt_path=last
paths.output_dir=<the run's folder>``.

A tracking server that stops answering during the run does not stop it: its outputs are written,
what the server missed is kept in ``<run folder>/tracking-unsent/``, and the exit code is 6;
``python -m <package>.tracking.resend <run folder>`` sends it later (``docs/tracking.md``).
"""

import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig

from .config import check_settings, entry_point, holds_only_hydra_files
from .training.errors import fail


@entry_point("train")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "train")  # before anything is imported, opened or written

    # Imported here so that `--help` and config errors answer without importing torch.
    from .data.checks import DataValidationError
    from .data.datasets import require_prepared
    from .tracking.base import TrackingError, check_sent
    from .training import distributed
    from .training.errors import TrainingError
    from .training.trainer import Stopped, fit

    logger = None
    try:
        require_prepared(cfg.paths.processed_dir)  # before a tracking run reads the splits
        ctx = distributed.setup(cfg.trainer.accelerator)
        output_dir = run_dir(cfg, distributed)
        if ctx.is_main:  # one tracking run per job; a resumed job continues its run
            keep_resolved_config(cfg)
            logger = open_run(cfg, output_dir)
        metrics = fit(cfg, output_dir, logger, ctx)
        if ctx.is_main:
            record_outputs(cfg, output_dir, logger)
            logger.finish("FINISHED")
            check_sent(logger)  # exit 6 if the tracker went away: what it missed is kept
    except TrackingError as error:
        fail("train", str(error), 6)
    except TrainingError as error:
        if logger is not None:
            logger.finish("FAILED")
        fail("train", str(error), error.exit_code)
    except (DataValidationError, FileNotFoundError) as error:
        if logger is not None:
            logger.finish("FAILED")
        fail("train", f"the data cannot be used: {error}", 5)
    except Stopped as stopped:
        if logger is not None:
            logger.finish("KILLED")
        print(stopped, file=sys.stderr)
        raise SystemExit(128 + stopped.signum) from None
    finally:
        distributed.cleanup()
    if ctx.is_main:
        summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if "/" in k)
        print(f"done: {summary}\nwrote {output_dir}/metrics.json")


def keep_resolved_config(cfg: DictConfig) -> None:
    """The run's resolved config in ``<paths.output_dir>/.hydra/config.yaml``, when it is set.

    Hydra keeps it in its own run folder; a run with ``paths.output_dir`` elsewhere (the
    pipeline's ``outputs/pipeline``) keeps its checkpoints there, and the config they came from
    beside them. Written once the settings are checked: a config error leaves nothing behind.
    """
    if not cfg.paths.output_dir:
        return
    from omegaconf import OmegaConf

    folder = Path(cfg.paths.output_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")


def run_dir(cfg: DictConfig, distributed) -> Path:
    """``paths.output_dir``, or Hydra's run folder of rank 0, the same for every rank.

    Each rank of a torchrun job composes its own Hydra run folder from the clock, so ranks that
    start a second apart would write to different folders: rank 0's wins, and the other ranks
    remove the folder Hydra made for them if it holds nothing but Hydra's own files.
    """
    if cfg.paths.output_dir:
        return Path(cfg.paths.output_dir)
    if cfg.ckpt_path == "last":
        print(
            "train: warning: ckpt_path=last looks for checkpoints in this run's new folder; to "
            "resume a run, also pass paths.output_dir=<its folder>.",
            file=sys.stderr,
        )
    from hydra.core.hydra_config import HydraConfig

    own = Path(HydraConfig.get().runtime.output_dir)
    shared = Path(distributed.broadcast_object(str(own)))
    if shared != own and holds_only_hydra_files(own, "train"):
        shutil.rmtree(own, ignore_errors=True)
    return shared


def resumed_state(cfg: DictConfig, output_dir: Path) -> dict:
    """The trainer state kept in the checkpoint this run resumes from (empty when starting)."""
    if cfg.ckpt_path is None:
        return {}
    import warnings

    from .training import checkpoint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trainer reports unreadable checkpoints itself
        resumed = checkpoint.resolve(cfg.ckpt_path, output_dir / "checkpoints")
    return resumed[0]["trainer_state"] if resumed else {}


def open_run(cfg: DictConfig, output_dir: Path):
    """The tracking run: a new one, or the checkpoint's run reopened, and the data it reads."""
    from .tracking.base import keep_unsent_in, open_logger
    from .tracking.records import record_data

    state = resumed_state(cfg, output_dir)
    run_id = state.get("run_id")
    logger = open_logger(cfg.logger, run_id, "train")
    keep_unsent_in(logger, output_dir)  # if the tracker goes away mid-run (tracking.resend)
    if run_id:
        logger.set_tags({"resumed_at_step": state.get("global_step", "unknown")})
    record_data(logger, cfg)
    return logger


def record_outputs(cfg: DictConfig, output_dir: Path, logger) -> None:
    """After training: metrics.json, checkpoints, the model (best weights, taking raw rows) and
    the training curves (curves.png, also written with logger=none) to the tracker."""
    from .tracking.records import record_curves
    from .tracking.records import record_outputs as record

    if not cfg.trainer.fast_dev_run:  # one step has no curve (and matplotlib costs a second)
        record_curves(logger, output_dir)
    record(logger, output_dir, cfg)


if __name__ == "__main__":
    main()
