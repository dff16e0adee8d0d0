"""Evaluate a trained model: ``python -m <package>.evaluate ckpt_path=... [overrides]``.

Rebuilds the model from the checkpoint's own config, predicts on the validation and test splits
and writes ``metrics.json``, ``evaluation.md`` and PNG charts to ``paths.reports_dir`` (see
``evaluation/``); with a tracking logger it also logs them to the checkpoint's run. With
``evaluation.registry.enabled`` a gate (``evaluation/gate.py``) decides whether the model may
become the champion: with an MLflow logger a version passing it is registered in the model
registry and the alias moves to it (``tracking/registry.py``); the report and the run say why.

Exit codes: 0 success; 2 bad config; 3 missing or unusable checkpoint; 5 missing or invalid data;
6 the tracking store cannot be used. A checkpoint whose training run is not in this tracking store
(trained with another one) is evaluated in a new run, with a note.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .config import as_dict, check_settings, entry_point


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
    from .data.schemas import is_images, is_text, schemas_for
    from .data.text import read_text_record
    from .errors import ConfigError
    from .evaluation import distributions, importance, report, slices, suite
    from .inference import (
        checkpoint_task,
        feature_scale,
        load_checkpoint,
        model_outputs,
        restore_model,
    )
    from .tasks import TextClassification

    state, path = loaded or load_checkpoint(cfg.ckpt_path)
    trained = OmegaConf.create(state["config"])
    if trained.data.name != cfg.data.name:
        raise ConfigError(
            f"{path} was trained on data.name={trained.data.name}, but this config evaluates "
            f"data.name={cfg.data.name}: pass the matching data=... override."
        )
    settings = as_dict(cfg.evaluation)
    model, device = restore_model(state, path, cfg.trainer.accelerator)
    processed = Path(cfg.paths.processed_dir)
    task = checkpoint_task(state, path)  # decodes outputs as the trainer encoded targets

    def predict(inputs: np.ndarray) -> np.ndarray:
        return model_outputs(model, inputs, device, task)

    images, text = is_images(trained.data), is_text(trained.data)
    tokenizer_json: str | None = None
    if text:
        if not isinstance(task, TextClassification):  # data.tokenizer set, data.task another
            raise ConfigError(
                f"{path} was trained on text data (data.tokenizer is set), but its data.task is "
                f"{trained.data.get('task')!r}, not text_classification"
            )
        # Texts are tokenized with the checkpoint's tokenizer (the model's ids, whatever has been
        # prepared since); the class names are prepare's (text.json) unless the config names them.
        tokenizer_json = task.tokenizer_json
        if not settings.get("class_names"):
            settings["class_names"] = read_text_record(processed)["class_names"]

    def predict_texts(texts) -> np.ndarray:
        """Raw texts to outputs, tokenized again: an edited text gets its own ids and length."""
        return text_outputs(model, device, task, texts)

    loaded_splits: dict[str, Any] = {}

    def load(split: str):
        """The split's dataset, read (and for text tokenized) once."""
        if split not in loaded_splits:
            loaded_splits[split] = load_split(
                trained.data, processed, split, task.targets, tokenizer_json=tokenizer_json
            )
        return loaded_splits[split]

    def targets(split: str):
        """The split's inputs and its targets as one value per row (class, or value); images
        as ``(n, C, H, W)`` in [0, 1], read from their files (not augmented); texts as padded
        token ids ``(n, longest)``."""
        dataset = load(split)
        if images or text:
            inputs = dataset.padded() if text else image_array(dataset)
            return inputs, dataset.targets.numpy().reshape(len(dataset))
        return dataset.tensors[0].numpy(), dataset.tensors[1].numpy().reshape(len(dataset))

    # Slices and behavioural tests speak in raw units: the scaling the model was trained with
    # (images: their pixels', data.pixel_range); texts have none.
    scaling: dict[str, Any] | None
    if images:
        scaling = pixel_scaling(trained.data)
    elif text:
        scaling = None
    else:
        scaling = feature_scale(state, path, processed, schemas_for(trained.data.name)[2])
    features = scaling["features"] if scaling else []

    def train_targets():
        """The training split's targets (its images are not read)."""
        if images or text:
            dataset = load("train")
            return dataset.targets.numpy().reshape(len(dataset))
        return targets("train")[1]

    splits = {}
    for name in ("val", "test"):
        frame = read_processed(processed / f"{name}.parquet")
        if text:
            dataset = load(name)
            # Lengths to slice by: characters of the text, tokens the model sees (cut at
            # data.max_length), and the class by name (label slices say family=time, not 7).
            names = [str(n) for n in settings["class_names"]]
            frame = frame.assign(
                characters=frame["text"].str.len(),
                tokens=dataset.lengths,
                class_name=[names[int(i)] for i in frame["label"]],
            )
            texts, y = dataset.texts, dataset.targets.numpy().reshape(len(dataset))
            output = text_outputs(model, device, task, texts)
            split = suite.Split(dataset.padded(), y, output, frame, texts=texts)
        else:
            x, y = targets(name)
            assert scaling is not None  # images and tables have one (above); only texts not
            frame = slices.in_raw_units(frame, scaling)
            split = suite.Split(x=x, y=y, output=predict(x), frame=frame)
        splits[name] = split
    test_inputs = splits["test"].texts if text else splits["test"].x
    others = {}
    for other in settings.get("compare_with") or []:
        other_path = load_checkpoint(other)[1]
        name = f"{other_path.parent.parent.name}/{other_path.name}"
        others[name] = test_outputs(other, test_inputs, cfg)
    seed_groups = {
        group: [test_outputs(run, test_inputs, cfg) for run in runs]
        for group, runs in (settings.get("compare_seeds") or {}).items()
    }
    train_texts = load("train").texts if text else None

    quantized = None
    spec = settings.get("quantization") or {}
    if spec.get("enabled", True):
        # The int8 copy against the float model, on the test split (evaluation/quantization.py).
        import torch

        from .evaluation import quantization

        test, cpu = splits["test"], torch.device("cpu")

        def cpu_outputs(copy) -> np.ndarray:  # as the test outputs above, on the CPU
            if text:
                return text_outputs(copy, cpu, task, test.texts)
            return model_outputs(copy, test.x, cpu, task)

        quantized = quantization.compare(
            model,
            test.x,
            test.y,
            task,
            spec,
            int(cfg.data.batch_size),
            outputs=cpu_outputs,
            float_outputs=test.output if device.type == "cpu" else None,
        )

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
            predict_texts=predict_texts if text else None,
            train_texts=train_texts,
        )
    except (KeyError, ValueError) as error:
        # A slice column, a feature or a setting the data or the suite does not know.
        raise ConfigError(
            f"configs/evaluation/ cannot be used with this data: {type(error).__name__}: {error}"
        ) from None
    if quantized is not None:
        results.quantization = quantized
        results.metrics.update(quantized.metrics())
    registry_error = None
    if (settings.get("registry") or {}).get("enabled"):
        # The gate to the model registry (evaluation/gate.py), and what the registry did.
        results.registry, registry_error = registry_gate(
            cfg, settings, results.metrics, splits["test"], test_inputs, task, state, path, logger
        )
        results.metrics.update(results.registry.metrics())
        set_tags = getattr(logger, "set_tags", None)
        if set_tags is not None:
            set_tags(results.registry.tags())
    files = report.write(
        results,
        cfg.paths.reports_dir,
        splits["test"],
        f"Evaluation of `{path}`",
        settings.get("class_names"),
    )
    files.append(model_card(results, cfg, state, path, model, settings.get("card")))
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
    if registry_error is not None:  # the report says what happened; the exit code too (6)
        raise registry_error
    return results.metrics


def model_card(results, cfg: DictConfig, state: dict, path: Path, model, answers) -> Path:
    """``model_card.md`` beside the report (evaluation/cards.py), from what the checkpoint says."""
    from .data.version import processed_md5
    from .evaluation.cards import write_model_card

    trained = OmegaConf.create(state["config"])
    target = str(trained.model.get("_target_", "model"))
    facts = {
        "name": target.rsplit(".", 1)[-1],
        "target": target,
        "parameters": sum(p.numel() for p in model.parameters()),
        "checkpoint": str(path),
        "run_id": (state.get("trainer_state") or {}).get("run_id"),
        "steps": int((state.get("trainer_state") or {}).get("global_step", 0)),
        "data": trained.data.name,
        "data_md5": processed_md5(cfg.paths.processed_dir),
    }
    return write_model_card(results, cfg.paths.reports_dir, facts, answers)


def registry_gate(cfg, settings, metrics, test, test_inputs, task, state, path, logger):
    """The gate's decision for this model and, with an MLflow logger, the registry's action:
    a new version with the alias moved to it when the gate passes. Returns the decision and
    the registry's error (a ``TrackingError``, raised once the report is written), or None.

    Without an MLflow logger the threshold is still decided, and nothing is registered."""
    import tempfile

    from .errors import ConfigError, TrackingError
    from .evaluation import gate

    spec = settings["registry"]
    alpha = float(settings.get("alpha", 0.05))
    name, alias = str(spec["model_name"]), str(spec["alias"])
    opener = getattr(logger, "model_registry", None)
    error: TrackingError | None = None
    registry = champion = None
    with tempfile.TemporaryDirectory(prefix="champion-") as download:
        try:
            if opener is not None and logger.run_id:
                registry = opener(name, alias)
                found = registry.champion(Path(download))
                if found is not None:
                    champion = gate.Champion(found.version, problem=found.problem)
                    value = float(metrics.get(spec["metric"], float("nan")))
                    # The champion's outputs on these test rows; not needed when the threshold
                    # already fails.
                    if found.checkpoint is not None and gate.reaches(
                        value, float(spec["required"]), str(spec["direction"])
                    ):
                        try:
                            champion.outputs = test_outputs(found.checkpoint, test_inputs, cfg)
                        except Exception as failure:  # another task, model or data: say so
                            champion.problem = (
                                f"its checkpoint {found.checkpoint} could not be run on these "
                                f"test rows ({type(failure).__name__}: {failure})"
                            )
        except TrackingError as failure:
            error, registry, champion = failure, None, None
        try:
            decision = gate.decide(
                metrics,
                test.output,
                test.y,
                task.kind,
                spec,
                alpha,
                champion,
                champion_known=registry is not None,
            )
        except KeyError as failure:
            raise ConfigError(str(failure.args[0])) from None
    holder = f"version {champion.version}" if champion is not None else "no version"
    if error is not None:
        decision.action = f"nothing registered: {error}"
    elif registry is None:
        decision.action = (
            "nothing registered: the model registry is MLflow's, and this evaluation has no "
            "MLflow logger (evaluation.registry needs logger=mlflow)"
        )
    elif not decision.passed:
        decision.action = f"nothing registered; the alias {alias} stays on {holder}"
    elif not path.is_file():
        decision.action = (
            f"nothing registered: {path} is a sharded checkpoint (a folder); consolidate it "
            f"into one file first; the alias {alias} stays on {holder}"
        )
    else:
        tags = {
            "gate.metric": decision.metric,
            "gate.value": f"{decision.value:.6g}",
            "gate.reasons": "; ".join(decision.reasons),
        }
        if decision.p_value is not None:
            tags["gate.p_value"] = f"{decision.p_value:.6g}"
        source_run = (state.get("trainer_state") or {}).get("run_id")
        try:
            decision.registered_version = registry.register(path, source_run, tags)
            moved = f"moved to it from {holder}" if champion is not None else "points to it"
            decision.action = (
                f"registered as version {decision.registered_version} of {name}; the alias "
                f"{alias} {moved}"
            )
        except TrackingError as failure:
            error = failure
            decision.action = f"nothing registered: {failure}"
    return decision, error


def image_array(dataset, batch_size: int = 256):
    """Every image of an ``ImageFiles`` split, preprocessed: ``(n, C, H, W)`` float32 in [0, 1]."""
    import numpy as np

    parts = [
        dataset.__getitems__(list(range(start, min(start + batch_size, len(dataset)))))[0]
        for start in range(0, len(dataset), batch_size)
    ]
    return np.concatenate([p.numpy() for p in parts]).astype(np.float32, copy=False)


def text_outputs(model, device, task, texts, batch_size: int = 256):
    """The model's outputs on raw ``texts``, tokenized with ``task``'s tokenizer (the
    checkpoint's): batches of similar lengths, each padded to its longest text only."""
    import numpy as np

    from .data.text import encode, pad
    from .inference import model_outputs

    ids = encode(task.tokenizer, list(texts), int(task.data.max_length))
    order = np.argsort([len(row) for row in ids], kind="stable")
    parts = [
        model_outputs(model, pad([ids[i] for i in chunk]), device, task)
        for chunk in np.array_split(order, max(1, -(-len(order) // batch_size)))
        if len(chunk)
    ]
    if not parts:  # no texts: no outputs
        return np.zeros((0, task.model_sizes()["out_features"]))
    out = np.empty((len(ids), *parts[0].shape[1:]))
    out[order] = np.concatenate(parts)
    return out


def test_outputs(ckpt_path: Any, inputs, cfg: DictConfig):
    """Another checkpoint's outputs on ``inputs``, decoded by its own task; for text, inputs
    are the raw texts, tokenized with that checkpoint's own tokenizer."""
    from .inference import checkpoint_task, load_checkpoint, model_outputs, restore_model

    state, path = load_checkpoint(ckpt_path)
    model, device = restore_model(state, path, cfg.trainer.accelerator)
    task = checkpoint_task(state, path)
    if task.text:
        return text_outputs(model, device, task, inputs)
    return model_outputs(model, inputs, device, task)


if __name__ == "__main__":
    main()
