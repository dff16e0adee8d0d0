"""What a request holds, as the exported model takes it, and its answers as predict writes them.

``ServedModel.load(path)`` reads an exported model (``exporting.load_program``: whichever
format) and what its ``predictor.json`` says about the input; then, per request:

- tables: ``{"rows": [{feature: value, ..., "id": optional}, ...]}``, checked against the
  dataset's raw schema exactly as ``predict`` checks a file (``batch.input_rows``: every broken
  rule at once, naming the column) and passed as float32 raw rows (the program scales them);
- texts: ``{"rows": [{"text": "...", "id": optional}, ...]}``, refused as ``predict`` refuses
  them (``text_batch.checked_texts``), tokenized with the tokenizer file exported beside the
  model (``<model>.tokenizer.json``: the checkpoint's own, checked against its md5);
- images: uploaded files, decoded and refused as ``predict`` decodes and refuses files
  (``data/images.py``, ``image_batch._unusable``); a file of another size is resized as
  training did (``Preprocess``) when the model allows it (``input.resize``), then given to the
  program in raw pixel units, which is what it takes.

A request that cannot be answered raises ``RequestRefused``: its HTTP status, a message and,
for data that breaks the schema, the failure table (``data/checks.Failure`` rows). The
answers are ``predict``'s columns (the task's ``columns``; texts add ``class_name``).
"""

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from .. import tasks
from ..batch import input_rows
from ..data.checks import DataValidationError, Failure
from ..data.images import ImageDecodeError, Preprocess, decode
from ..errors import CheckpointError
from ..exporting import load_program
from ..image_batch import _unusable
from ..text_batch import checked_texts

#: How many failing values a failure row shows (as ``schema_failures`` does).
SHOWN = 5


class RequestRefused(Exception):
    """A request the service answers with ``status`` (4xx), ``message`` and ``failures``."""

    def __init__(self, status: int, message: str, failures: Sequence[Failure] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.failures = list(failures)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.failures or self.status == 422:
            body["failures"] = [dataclasses.asdict(f) for f in self.failures]
        return body


def json_rows(body: bytes, max_rows: int) -> list[dict[str, Any]]:
    """The ``rows`` of a JSON body: 400 when it is not JSON or not ``{"rows": [{...}, ...]}``
    (one JSON value per key: numbers, strings, true/false, null), 413 over ``max_rows``."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestRefused(400, f"the body is not valid JSON ({error})") from None
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise RequestRefused(
            400, 'expected a JSON object {"rows": [{...}, ...]}: a list of rows, one object each'
        )
    if not rows:
        raise RequestRefused(400, '"rows" is empty: nothing to predict')
    if len(rows) > max_rows:
        raise RequestRefused(
            413, f"{len(rows)} rows in one request, more than max_rows={max_rows}: split it"
        )
    for index, row in enumerate(rows):
        nested = [key for key, value in row.items() if isinstance(value, (dict, list))]
        if nested:
            raise RequestRefused(
                400, f"row {index}: {nested[0]!r} holds a list or an object, expected one value"
            )
    return rows


@dataclasses.dataclass
class Batch:
    """One request's inputs as the program takes them, and what the answers are keyed by."""

    inputs: np.ndarray
    keys: dict[str, list]  # the columns before the task's: id (tables, texts) or path (images)
    texts: list[str] | None = None


class ServedModel:
    """An exported model and what it takes: ``kind`` is "table", "text" or "image"."""

    def __init__(self, path: Path, run: Callable[[np.ndarray], np.ndarray], metadata: dict):
        self.path, self.run, self.metadata = path, run, metadata
        spec = metadata["input"]
        self.kind = "image" if "pixels" in spec else "text" if "tokens" in spec else "table"
        self.dtype = np.dtype(spec.get("dtype", "float32"))
        data = metadata["data"]
        self.data = OmegaConf.create({"name": data["name"], "target": data["target"]})
        self.task = tasks.TASKS[data["task"]](OmegaConf.create(data))  # its columns only
        self.class_names = metadata.get("class_names")
        self.tokenizer = self._tokenizer() if self.kind == "text" else None

    @classmethod
    def load(cls, path: str | Path) -> "ServedModel":
        path = Path(path)
        run, metadata = load_program(path)
        return cls(path, run, metadata)

    def _tokenizer(self) -> Any:
        from ..data.text import tokenizer_from_json, tokenizer_md5

        spec = self.metadata["tokenizer"]
        file = self.path.with_name(spec["file"])
        if not file.is_file():
            raise CheckpointError(
                f"{file} does not exist: a text model is exported with its tokenizer beside it "
                f"({spec['file']}); copy both files, or export the model again."
            )
        content = file.read_text(encoding="utf-8")
        if tokenizer_md5(content) != spec["md5"]:
            raise CheckpointError(
                f"{file} is not the tokenizer {self.path.name} was exported with (its md5 "
                "differs): export the model again, or copy the two files together."
            )
        return tokenizer_from_json(content)

    # ---- requests -------------------------------------------------------------------------

    def stack(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        """Several requests' inputs as one batch (token ids padded to the longest)."""
        if self.kind != "text":
            return np.concatenate(parts, axis=0)
        from ..data.text import pad

        return pad([row for part in parts for row in part], self.metadata["tokenizer"]["pad_id"])

    def from_rows(self, rows: list[dict[str, Any]]) -> Batch:
        if self.kind == "image":
            raise RequestRefused(
                415,
                "this model takes image files: send multipart/form-data, one part per "
                "file named `files`",
            )
        frame = pd.DataFrame(rows)
        if self.kind == "text":
            return self._texts(frame)
        try:
            ids, features = input_rows(frame, self.data, table="request")
        except DataValidationError as error:
            raise RequestRefused(422, str(error), getattr(error, "failures", [])) from None
        return Batch(features.astype(self.dtype), {"id": ids.tolist()})

    def _texts(self, frame: pd.DataFrame) -> Batch:
        from ..data.text import encode, pad

        try:
            texts = checked_texts(frame, "the request")
        except DataValidationError as error:
            raise RequestRefused(422, str(error), _text_failures(frame)) from None
        spec = self.metadata["tokenizer"]
        ids = pad(encode(self.tokenizer, texts, int(spec["max_length"])), spec["pad_id"])
        keys = {"id": [_plain(i) for i in frame["id"].tolist()]} if "id" in frame.columns else {}
        return Batch(ids, keys, texts)

    def from_files(self, files: list[tuple[str, bytes]]) -> Batch:
        """Uploaded ``(filename, content)`` pairs: one image each."""
        if self.kind != "image":
            raise RequestRefused(
                415, 'this model takes JSON: send Content-Type: application/json, {"rows": [...]}'
            )
        spec = self.metadata["input"]
        channels, height, width = (int(d) for d in spec["shape"][1:])
        low, high = (float(v) for v in spec["pixel_range"])
        resize = bool(spec.get("resize", True))
        preprocess = Preprocess((low, high), (height, width), resize)
        images, failures = [], []
        for index, (name, content) in enumerate(files):
            try:
                pixels = decode(name, channels, content=content)
                why = _unusable(pixels, (height, width), resize, low, high)
            except ImageDecodeError as error:
                why = str(error).removeprefix(f"{name}: ")
            if why:
                failures.append(Failure("request", "files", why, [name], [index], 1))
            elif not failures:
                images.append(_model_pixels(pixels, preprocess))
        if failures:
            raise RequestRefused(
                422,
                f"{len(failures)} of the {len(files)} files cannot be used, so none was "
                "predicted: " + "; ".join(f"{f.failing_values[0]}: {f.check}" for f in failures),
                failures,
            )
        return Batch(np.stack(images).astype(self.dtype), {"path": [n for n, _ in files]})

    def answers(self, batch: Batch, answers: np.ndarray) -> list[dict[str, Any]]:
        """predict's rows for ``answers``: the keys, the task's columns (texts: class_name)."""
        columns: dict[str, list[Any] | np.ndarray] = {
            **batch.keys,
            **self.task.columns(answers),
        }
        if self.kind == "text":
            names = self.class_names or [str(k) for k in range(answers.shape[1])]
            columns["class_name"] = [names[int(k)] for k in columns["prediction"]]
        values = {
            k: v.tolist() if isinstance(v, np.ndarray) else list(v) for k, v in columns.items()
        }
        return [dict(zip(values, row, strict=True)) for row in zip(*values.values(), strict=True)]


def _model_pixels(pixels: torch.Tensor, preprocess: Preprocess) -> np.ndarray:
    """Raw pixels of the model's size: the file's own, or resized as training resized them
    (``Preprocess`` works in [0, 1]; the program takes raw units and scales them itself)."""
    if tuple(pixels.shape[-2:]) == preprocess.size:
        return pixels.float().numpy()
    scaled = preprocess(pixels.unsqueeze(0))[0]
    return (scaled * preprocess.span + preprocess.low).numpy()


def _text_failures(frame: pd.DataFrame) -> list[Failure]:
    """The failure table of texts ``checked_texts`` refuses: no column, or bad texts."""
    if "text" not in frame.columns:
        return [Failure("request", "text", "column_present", [], [], len(frame))]
    bad = [
        (row, text)
        for row, text in enumerate(frame["text"].tolist())
        if not isinstance(text, str) or not text.strip()
    ]
    if not bad:
        return []
    values = [_plain(text) for _, text in bad[:SHOWN]]
    rows = [row for row, _ in bad[:SHOWN]]
    return [Failure("request", "text", "non-empty string", values, rows, len(bad))]


def _plain(value: Any) -> Any:
    """A value JSON can carry: NaN (a missing key) is null; anything else not plain, text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
