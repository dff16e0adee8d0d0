"""Cross-validate the training config: ``python -m <package>.cv [cv.folds=5] [overrides]``.

The processed training split is dealt into ``cv.folds`` folds (stratified by class for
classification, ``cv.seed``); each fold trains with the trainer, as ``train`` does, on the other
folds (feature scaling or tokenizer fitted on them alone) and is scored on its own rows, as is
the task's trivial baseline (majority class, mean target). The run's folder
(``paths.output_dir``, else ``outputs/cv/<date>/``) gets ``fold-<i>/`` (the fold's data,
checkpoints and metrics), ``cv.json`` and ``cv.md``: the per-fold metrics, their means with a
corrected t-interval, and a corrected resampled t-test against the baseline
(``training/crossval.py``; docs/how-to/cross-validate.md). Overrides apply to every fold
(``model=mlp_small trainer.max_epochs=10``).

Exit codes: 0 success (whatever the test says); 2 bad config (a setting, cv.folds larger than a
class, a folder in use, under torchrun); 4 non-finite loss or weights; 5 missing or invalid
data; 6 the tracking server cannot be reached or went away; 128 + N stopped by signal N (the
folds finished so far keep their folders; run the command again for a whole cross-validation).
"""

from pathlib import Path

from omegaconf import DictConfig

from .config import check_settings, entry_point

#: The files a cross-validation writes in its folder: a new one refuses a folder holding them.
WRITTEN = ("cv.json", "fold-0")


@entry_point("cv")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "cv")  # before anything is imported, opened or written
    # Imported here so that `--help` and config errors answer without importing torch.
    from .data.record import require_validated
    from .training import distributed, run_lock
    from .training.crossval import cross_validate

    data_md5 = require_validated(cfg)  # prepared, readable and validated, before a run opens
    output_dir = run_dir(cfg)
    refuse_used_folder(output_dir)
    lock = run_lock.hold(output_dir, None, distributed.setup(cfg.trainer.accelerator))
    try:
        summary = cross_validate(cfg, output_dir, data_md5)
    finally:
        lock.release()
    main_metric, comparison = summary["metric"], summary["comparison"]
    mean = summary["mean"][main_metric]
    print(
        f"done: {main_metric}={mean['mean']:.4g} ({summary['confidence']:.0%} interval "
        f"[{mean['ci_low']:.4g}, {mean['ci_high']:.4g}]) over {summary['folds']} folds; "
        f"baseline {comparison['baseline_mean']:.4g}, p={comparison['p_value']:.3g}\n"
        f"wrote {output_dir}/cv.json and cv.md"
    )


def run_dir(cfg: DictConfig) -> Path:
    """``paths.output_dir``, or Hydra's run folder (``outputs/cv/<date>/``)."""
    if cfg.paths.output_dir:
        return Path(cfg.paths.output_dir)
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def refuse_used_folder(output_dir: Path) -> None:
    """A ``ConfigError`` (exit 2) when ``output_dir`` holds an earlier cross-validation."""
    from .errors import ConfigError

    used = [name for name in WRITTEN if (output_dir / name).exists()]
    if used:
        raise ConfigError(
            f"paths.output_dir={output_dir} already holds a cross-validation ({used[0]}): its "
            "folds would be replaced. Choose another folder (or remove that one)."
        )


if __name__ == "__main__":
    main()
