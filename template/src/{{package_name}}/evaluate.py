"""Evaluate a trained model: ``python -m <package>.evaluate ckpt_path=... [overrides]``.

Rebuilds the model from the checkpoint's own config, predicts on the validation and test splits
and writes ``metrics.json``, ``evaluation.md`` and PNG charts to ``paths.reports_dir`` (see
``evaluation/``); with a tracking logger it also logs them to the checkpoint's run.

Exit codes: 0 success; 2 bad config; 3 missing or unusable checkpoint; 5 missing or invalid data;
6 the tracking store cannot be used. A checkpoint whose training run is not in this tracking store
(trained with another one) is evaluated in a new run, with a note.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .config import check_settings, entry_point


@entry_point("evaluate")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "evaluate")  # before a checkpoint is read or a run opened
    # Imported here so that `--help` and config errors answer without importing torch.
    from .data.record import require_validated
    from .inference import load_checkpoint
    from .tracking.base import open_logger

    logger = None
    status = "FAILED"
    try:  # an error's message and exit code: errors.reported
        loaded = load_checkpoint(cfg.ckpt_path)
        require_validated(cfg)  # the data it scores passed validation, these very files
        # Reopen the training run when the checkpoint knows it, so its metrics sit together
        # (in a new run, with a note, when this store does not hold it: tracking/base.py).
        run_id = (loaded[0].get("trainer_state") or {}).get("run_id")
        logger = open_logger(cfg.logger, run_id, "evaluate")
        metrics = evaluate(cfg, logger, loaded)
        status = "FINISHED"
    finally:
        if logger is not None:
            logger.finish(status)
    headline = [
        k for k in ("test/accuracy", "test/f1_macro", "test/mae", "test/r2") if k in metrics
    ]
    print(", ".join(f"{k}={metrics[k]:.4g}" for k in headline))
    print(f"wrote {Path(cfg.paths.reports_dir) / 'evaluation.md'} and metrics.json")


def evaluate(
    cfg: DictConfig, logger: Any = None, loaded: tuple[dict, Path] | None = None
) -> dict[str, float]:
    """Evaluate ``cfg.ckpt_path`` (or the already ``loaded`` checkpoint); returns the metrics."""
    # Imported here, not at the top, for the reason main() gives: `--help` and config errors
    # answer without loading torch, pandas and the evaluation suite.
    import numpy as np
    import pandas as pd

    from .data.checks import read_processed
    from .data.datasets import load_split
    from .data.images import pixel_scaling
    from .data.schemas import is_images, schemas_for
    from .errors import ConfigError
    from .evaluation import distributions, importance, report, slices, suite
    from .inference import (
        checkpoint_task,
        feature_scale,
        load_checkpoint,
        model_outputs,
        restore_model,
    )

    state, path = loaded or load_checkpoint(cfg.ckpt_path)
    trained = OmegaConf.create(state["config"])
    if trained.data.name != cfg.data.name:
        raise ConfigError(
            f"{path} was trained on data.name={trained.data.name}, but this config evaluates "
            f"data.name={cfg.data.name}: pass the matching data=... override."
        )
    settings = OmegaConf.to_container(cfg.evaluation, resolve=True)
    model, device = restore_model(state, path, cfg.trainer.accelerator)
    processed = Path(cfg.paths.processed_dir)
    task = checkpoint_task(state, path)  # decodes outputs as the trainer encoded targets

    def predict(inputs: np.ndarray) -> np.ndarray:
        return model_outputs(model, inputs, device, task)

    images = is_images(trained.data)

    def targets(split: str):
        """The split's inputs and its targets as one value per row (class, or value); images
        as ``(n, C, H, W)`` in [0, 1], read from their files (not augmented)."""
        dataset = load_split(trained.data, processed, split, task.targets)
        if images:
            inputs = image_array(dataset)
            return inputs, dataset.targets.numpy().reshape(len(dataset))
        return dataset.tensors[0].numpy(), dataset.tensors[1].numpy().reshape(len(dataset))

    # Slices and behavioural tests speak in raw units: the scaling the model was trained with
    # (images: their pixels', data.pixel_range).
    if images:
        scaling = pixel_scaling(trained.data)
    else:
        scaling = feature_scale(state, path, processed, schemas_for(trained.data.name)[2])
    features = scaling["features"]

    def train_targets():
        """The training split's targets (its images are not read)."""
        if images:
            dataset = load_split(trained.data, processed, "train", task.targets)
            return dataset.targets.numpy().reshape(len(dataset))
        return targets("train")[1]

    splits = {}
    for name in ("val", "test"):
        x, y = targets(name)
        frame = slices.in_raw_units(read_processed(processed / f"{name}.parquet"), scaling)
        splits[name] = suite.Split(x=x, y=y, output=predict(x), frame=frame)
    others = {}
    for other in settings.get("compare_with") or []:
        other_path = load_checkpoint(other)[1]
        name = f"{other_path.parent.parent.name}/{other_path.name}"
        others[name] = test_outputs(other, splits["test"].x, cfg)
    seed_groups = {
        group: [test_outputs(run, splits["test"].x, cfg) for run in runs]
        for group, runs in (settings.get("compare_seeds") or {}).items()
    }

    try:
        results = suite.run(
            settings,
            splits["val"],
            splits["test"],
            predict,
            train_targets(),
            features,
            seed=int(cfg.seed),
            others=others,
            seed_groups=seed_groups,
            scaling=scaling,
            task=task,
        )
    except (KeyError, ValueError) as error:
        # A slice column, a feature or a setting the data or the suite does not know.
        raise ConfigError(
            f"configs/evaluation/ cannot be used with this data: {type(error).__name__}: {error}"
        ) from None
    files = report.write(
        results,
        cfg.paths.reports_dir,
        splits["test"],
        f"Evaluation of `{path}`",
        settings.get("class_names"),
    )
    if logger is not None:
        step = int((state.get("trainer_state") or {}).get("global_step", 0))
        logger.log_metrics({f"evaluation/{k}": v for k, v in results.metrics.items()}, step)
        # Trackers that store files (MLflow) get the report too; the Logger protocol needs not.
        log_artifact = getattr(logger, "log_artifact", None)
        if log_artifact is not None:
            for file in files:
                log_artifact(file, "evaluation")
        # The best and worst test predictions as tables the tracker's UI can sort and filter.
        log_table = getattr(logger, "log_table", None)
        if log_table is not None:
            for kind in ("best", "worst"):
                rows = [asdict(row) for row in getattr(results.examples, kind)]
                rows = [{k: v for k, v in row.items() if v is not None} for row in rows]
                log_table(pd.DataFrame(rows), f"evaluation/predictions_{kind}.json")
            # What it predicts per split, and (tabular) which features it relies on.
            class_names = settings.get("class_names")
            for name, table in distributions.tables(results.distributions, class_names).items():
                log_table(table, f"evaluation/{name}.json")
            if results.importance is not None:
                log_table(
                    importance.table(asdict(results.importance)),
                    "evaluation/feature_importance.json",
                )
    return results.metrics


def image_array(dataset, batch_size: int = 256):
    """Every image of an ``ImageFiles`` split, preprocessed: ``(n, C, H, W)`` float32 in [0, 1]."""
    import numpy as np

    parts = [
        dataset.__getitems__(list(range(start, min(start + batch_size, len(dataset)))))[0]
        for start in range(0, len(dataset), batch_size)
    ]
    return np.concatenate([p.numpy() for p in parts]).astype(np.float32, copy=False)


def test_outputs(ckpt_path: Any, inputs, cfg: DictConfig):
    """Another checkpoint's outputs on ``inputs``, decoded by its own task."""
    from .inference import checkpoint_task, load_checkpoint, model_outputs, restore_model

    state, path = load_checkpoint(ckpt_path)
    model, device = restore_model(state, path, cfg.trainer.accelerator)
    return model_outputs(model, inputs, device, checkpoint_task(state, path))


if __name__ == "__main__":
    main()
