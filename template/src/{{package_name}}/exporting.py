"""The checkpoint's ``Predictor`` as a ``torch.export`` program or an ONNX model:
``python -m <package>.export``.

``export_model`` writes it (``output``'s suffix says which: ``.pt2`` or ``.onnx``);
``load_program`` reads either back with the ``predictor.json`` it carries, which says what goes
in (float32 raw rows, the feature columns; for images float32 raw pixels ``(n, C, H, W)`` in
``data.pixel_range`` units; for texts int64 token ids ``(n, L)``) and what comes out (the task's
``answers_spec``: probabilities, or values in the target's units).

The ONNX model is the ``torch.export`` program translated by ``torch.onnx.export`` (its
``dynamo=True`` exporter, the default since torch 2.9, with onnxscript): the same graph, the
same dynamic dimensions, ``predictor.json`` in the model's ``metadata_props``. onnxruntime runs
it (``load_program``), without torch.

For images the program holds the ``Preprocess`` training applied (pixel range to [0, 1]): it
takes raw pixels of ``data.image_shape``'s height and width only, with a dynamic batch. Resizing
stays outside the program (``predict`` resizes files one by one when ``data.resize`` allows):
a traced resize would fix one input size anyway, and each size would need its own program.
"""

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from .data.schemas import pixel_range, schemas_for
from .data.version import data_version, file_md5
from .errors import CheckpointError, ConfigError, ProjectError
from .inference import (
    checkpoint_task,
    feature_scale,
    load_checkpoint,
    predictor,
    trained_config,
)
from .tracking.run_info import git_state

EXPORT_METADATA = "predictor.json"
# output's suffix -> the format written: torch.export's program, or ONNX for onnxruntime.
FORMATS = {".pt2": "torch.export", ".onnx": "ONNX"}


def export_model(cfg: DictConfig) -> Path:
    """``python -m <package>.export``: the checkpoint's ``Predictor`` as a torch.export program,
    or as an ONNX model when ``cfg.output`` ends in ``.onnx``.

    Saved to ``cfg.output`` (default: beside the checkpoint, with the suffix ``.pt2``): a
    ``.pt2`` with ``torch.export.save``, an ``.onnx`` with ``torch.onnx.export`` of the same
    program; the batch dimension is dynamic (texts: the length too). The model takes float32 raw
    rows of shape ``(n, features)``, or for images float32 raw pixels ``(n, *data.image_shape)``
    in ``data.pixel_range`` units, or for texts int64 token ids ``(n, L)``; ``predictor.json``
    inside the file says what goes in and comes out. Written to a partial file first, then
    renamed: a failed export leaves no half-written model at ``output``.
    """
    if cfg.get("output") and Path(str(cfg.output)).suffix not in FORMATS:
        raise ConfigError(
            f"output={cfg.output}: an exported model is a .pt2 file (torch.export) or an .onnx "
            "file (ONNX, for onnxruntime); the suffix says which."
        )
    state, path = load_checkpoint(cfg.ckpt_path)
    output = Path(str(cfg.output)) if cfg.get("output") else path.with_suffix(".pt2")
    model, _ = predictor(state, path, cfg, "cpu")
    data = trained_config(state, path, cfg).data
    spec: dict[str, Any]  # predictor.json's "input": JSON values of several kinds
    if data.get("image_shape"):
        shape = [int(d) for d in data.image_shape]
        example = torch.zeros(2, *shape, dtype=torch.float32)
        low, high = pixel_range(data)
        spec = {"pixels": "raw", "pixel_range": [low, high], "layout": "NCHW"}
        spec |= {"dtype": "float32", "shape": ["n", *shape]}
        spec["resize"] = bool(data.get("resize", True))  # other sizes resized (predict does)
    elif data.get("tokenizer"):
        # Token ids of the checkpoint's tokenizer, padded with 0: n and L both dynamic.
        example = torch.ones(2, 8, dtype=torch.int64)
        spec = {"dtype": "int64", "shape": ["n", "L"], "tokens": "ids"}
    else:
        features = schemas_for(data.name)[2]
        example = torch.zeros(2, len(features), dtype=torch.float32)
        spec = {"dtype": "float32", "shape": ["n", len(features)], "columns": features}
        # The training split's scaling (raw = x * scale + offset): the service's monitoring bins
        # inputs in these standardised units, as the processed training data is stored.
        scaling = feature_scale(state, path, cfg.paths.processed_dir, features)
        spec["feature_scale"] = {"offset": scaling["offset"], "scale": scaling["scale"]}
    batch = torch.export.Dim("batch", min=1)
    dims = {0: batch}
    if data.get("tokenizer"):
        dims[1] = torch.export.Dim("length", min=1, max=int(data.max_length))
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=(dims,))
    metadata = {
        "checkpoint": str(path),
        "data": {"name": data.name, "task": data.task, "target": data.target},
        "input": spec,
        "output": checkpoint_task(state, path).answers_spec(),
        "versions": versions(state, path, cfg),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    if data.get("tokenizer"):
        metadata |= _text_metadata(state, path, cfg, data, output)
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")  # torch wants .pt2
    try:
        if output.suffix == ".onnx":
            _save_onnx(program, metadata, partial)
        else:
            extra = {EXPORT_METADATA: json.dumps(metadata)}
            torch.export.save(program, partial, extra_files=extra)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def _save_onnx(program: Any, metadata: dict[str, Any], path: Path) -> None:
    """The torch.export ``program`` translated to ONNX, with ``metadata`` as its
    ``predictor.json`` metadata entry, in one file at ``path`` (weights inside, not beside).

    Quietly: the exporter's progress lines, its warnings and its log messages (operators of
    packages that are not installed) would bury the command's one line of output.
    """
    quiet = {name: logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")}
    levels = {name: logger.level for name, logger in quiet.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for logger in quiet.values():
                logger.setLevel(logging.ERROR)
            onnx_program = torch.onnx.export(
                program,
                dynamo=True,
                input_names=["inputs"],
                output_names=["answers"],
                verbose=False,
            )
        assert onnx_program is not None  # None only from the legacy exporter (dynamo=False)
    except torch.onnx.errors.OnnxExporterError as error:  # an operator it cannot translate
        lines = str(error).strip().splitlines() or [""]
        raise ProjectError(
            f"the ONNX exporter cannot translate this model ({type(error).__name__}: "
            f"{lines[-1]}); export it as .pt2 (torch.export) instead."
        ) from error
    finally:
        for name, logger in quiet.items():
            logger.setLevel(levels[name])
    graph = onnx_program.model.graph
    # The dynamic dimensions, named as predictor.json's input shape names them (n, L).
    shape = graph.inputs[0].shape
    assert shape is not None  # torch.export's programs give their inputs a rank
    onnx_program.rename_axes(
        {
            dim.value: metadata["input"]["shape"][axis]
            for axis, dim in enumerate(shape)
            if not isinstance(dim, int) and dim.value is not None
        }
    )
    onnx_program.model.metadata_props[EXPORT_METADATA] = json.dumps(metadata)
    onnx_program.save(path, external_data=False)


def _text_metadata(state, path, cfg, data, output: Path) -> dict[str, Any]:
    """Writes the checkpoint's tokenizer.json beside ``output`` and says how to tokenize."""
    from .data.text import PAD_ID, TOKENIZER_FILE, tokenizer_md5
    from .tasks.text_classification import TextClassification
    from .text_batch import class_names

    task = checkpoint_task(state, path)
    assert isinstance(task, TextClassification)  # text data (data.tokenizer): the text task
    assert task.tokenizer_json is not None  # load_state_dict set it from the checkpoint
    tokenizer_file = output.with_name(f"{output.stem}.{TOKENIZER_FILE}")
    tokenizer_file.write_text(task.tokenizer_json, encoding="utf-8")
    return {
        "tokenizer": {
            "file": tokenizer_file.name,
            "md5": tokenizer_md5(task.tokenizer_json),
            "max_length": int(data.max_length),
            "pad_id": PAD_ID,
        },
        "class_names": class_names(
            data, task.num_classes, cfg.paths.processed_dir, task.tokenizer_json
        ),
    }


def versions(state: dict[str, Any], path: Path, cfg: DictConfig) -> dict[str, Any]:
    """What the service's ``GET /metadata`` says the model is: the checkpoint (its md5 and
    training run), the code (git, at export) and the data (the processed files' md5, at export).
    """
    import datetime

    return {
        "checkpoint": {"md5": file_md5(path) if path.is_file() else None},
        "run_id": (state.get("trainer_state") or {}).get("run_id"),
        "code": git_state(),
        "data": data_version(cfg.paths.processed_dir),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def load_program(path: str | Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """``(run, metadata)`` of an exported model, whichever format: ``run(inputs)`` takes a numpy
    batch as ``metadata["input"]`` describes it and returns the answers as float64 numpy.

    ``.pt2``: torch.export's program; ``.onnx``: an onnxruntime session (CPU).
    """
    path = Path(path)
    if path.suffix == ".pt2":
        program, metadata = load_exported(path)
        module = program.module()

        def run(inputs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.as_tensor(inputs)).double().numpy()

        return run, metadata
    if path.suffix == ".onnx":
        return _onnx_program(path)
    raise ConfigError(f"{path}: expected an exported model, a .pt2 or .onnx file.")


def _onnx_program(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """``load_program`` for an ``.onnx`` file: an onnxruntime session on the CPU, with as many
    threads as torch uses (``OMP_NUM_THREADS``; onnxruntime's own default is every core)."""
    import onnxruntime

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such exported model")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime's own exception types: a file it cannot load
        raise CheckpointError(f"{path}: onnxruntime cannot load it: {error}") from error
    properties = session.get_modelmeta().custom_metadata_map
    if EXPORT_METADATA not in properties:
        raise CheckpointError(
            f"{path}: an ONNX model without {EXPORT_METADATA} in its metadata: export it with "
            "`python -m <package>.export ... output=<name>.onnx`."
        )
    metadata = json.loads(properties[EXPORT_METADATA])
    name = session.get_inputs()[0].name
    dtype = np.dtype(metadata["input"]["dtype"])

    def run(inputs: np.ndarray) -> np.ndarray:
        (answers,) = session.run(None, {name: np.ascontiguousarray(inputs, dtype=dtype)})
        return answers.astype(np.float64)

    return run, metadata


def load_exported(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(program, metadata)``: call ``program.module()(rows)`` on float32 raw rows (images:
    raw pixels ``(n, C, H, W)``)."""
    extra = {EXPORT_METADATA: ""}
    program = torch.export.load(Path(path), extra_files=extra)
    return program, json.loads(extra[EXPORT_METADATA])
