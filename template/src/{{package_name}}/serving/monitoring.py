"""What the service receives, in summaries: ``RequestLog`` writes one JSON line per window.

The service calls ``record`` once per request with its status, its latency and, for a request
it answered, ``monitored_values`` of its inputs and the model's predictions. Each value is
counted into a histogram on fixed bins and dropped: the log holds counts only, so no row, text,
image, id or file name of a request can be read back from it. ``python -m <package>.monitor``
sums the lines of a recent window and compares them with the training data (``serving/drift.py``).

What is monitored, per task (``monitored_values``):

- tables: each feature in the training split's standard units, ``z = (raw - offset) / scale``
  (the export's ``input.feature_scale``, the scaling the processed data is stored in), on the
  bins ``Z_EDGES`` (-6 to 6 in steps of 0.25, and one open bin at each end);
- images: each image's mean intensity in [0, 1] (its raw pixels over ``input.pixel_range``),
  on ``UNIT_EDGES`` (steps of 0.02);
- texts: each text's length in characters and in tokens (non-padding ids), on ``COUNT_EDGES``
  (geometric, four bins per doubling);
- predictions: the count of each predicted class (classification: the output kind
  ``probabilities``), or a histogram of the predicted values on ``VALUE_EDGES`` (regression:
  geometric in the target's units, both signs).

One line (a window; ``every_s`` seconds or ``every_requests`` requests, whichever comes first)::

    {"bins_version": 1, "start": "2026-01-01T00:00:00.000Z", "end": "...", "model": {...},
     "requests": 120, "rows": 480, "statuses": {"200": 118, "422": 2},
     "latency_ms": {"p50": 3.1, "p99": 12.0, "max": 14.2, "bins": "latency_ms", "counts": [...]},
     "inputs": {"<key>": {"bins": "z", "counts": [...], "nonfinite": 0}, ...},
     "predictions": {"kind": "classes", "counts": [...]}  (or {"kind": "values", "bins": ...}),
     "edges": {"z": [...], "latency_ms": [...], ...}}

``counts`` has one more entry than its ``edges``: ``counts[0]`` is below the first edge,
``counts[i]`` is in ``[edges[i-1], edges[i])`` and the last is at or above the last edge.
Non-finite values are counted apart (``nonfinite``). The line carries its edges, so that
``monitor`` bins the training data exactly as the service did, whatever version wrote it.
"""

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

#: Changes when the bins below change (a log mixing versions is refused by ``monitor``).
BINS_VERSION = 1
#: Table features in standard units: -6 to 6 in steps of 0.25 (and an open bin at each end).
Z_EDGES = np.linspace(-6.0, 6.0, 49)
#: Values in [0, 1] (images' mean intensity): steps of 0.02.
UNIT_EDGES = np.linspace(0.0, 1.0, 51)
#: Lengths (characters, tokens): 1, 2, 3, ... then four bins per doubling, up to 2**22.
COUNT_EDGES = np.unique(np.ceil(np.geomspace(1.0, 2.0**22, 22 * 4 + 1)))
#: Regression predictions in the target's units: +-1e-3 to +-1e6, 16 bins per decade, and 0.
_POSITIVE = np.geomspace(1e-3, 1e6, 9 * 16 + 1)
VALUE_EDGES = np.concatenate([-_POSITIVE[::-1], [0.0], _POSITIVE])
#: Latency in milliseconds: 2**-7 (8 us) to 2**20 (17 min), 8 bins per doubling (9% wide).
LATENCY_EDGES = np.geomspace(2.0**-7, 2.0**20, 27 * 8 + 1)

EDGES: dict[str, np.ndarray] = {
    "z": Z_EDGES,
    "unit": UNIT_EDGES,
    "count": COUNT_EDGES,
    "values": VALUE_EDGES,
    "latency_ms": LATENCY_EDGES,
}


def is_images(metadata: dict) -> bool:
    return "pixels" in metadata["input"]


def is_text(metadata: dict) -> bool:
    return metadata["input"].get("tokens") == "ids" or "tokenizer" in metadata


def answers_probabilities(metadata: dict) -> bool:
    """Whether the model answers class probabilities: its export's answers spec (the task's
    ``answers_spec``) says so; then the log counts the predicted classes."""
    return metadata["output"].get("kind") == "probabilities"


def input_bins(metadata: dict) -> dict[str, str]:
    """The monitored keys of a model's inputs and the name of each one's bins (in ``EDGES``)."""
    if is_images(metadata):
        return {"mean_intensity": "unit"}
    if is_text(metadata):
        return {"characters": "count", "tokens": "count"}
    return {str(column): "z" for column in metadata["input"]["columns"]}


def monitored_values(
    metadata: dict, inputs: np.ndarray, texts: list[str] | None = None
) -> Mapping[str, np.ndarray]:
    """What ``RequestLog.record`` counts of a batch of inputs, as the exported model takes them
    (``metadata``: its ``predictor.json``).

    Tables: ``{feature: z}`` with ``z = (raw - offset) / scale`` (``input.feature_scale``);
    images: ``{"mean_intensity": mean raw pixel of each image scaled by input.pixel_range to
    [0, 1]}``; texts: ``{"characters": len(text), "tokens": non-padding ids per row}``
    (``characters`` only when ``texts`` is given). A table's is a read-only mapping over the
    batch (``Columns``), which ``record`` bins in one call.
    """
    inputs = np.asarray(inputs)
    if is_images(metadata):
        low, high = (float(v) for v in metadata["input"]["pixel_range"])
        means = inputs.reshape(len(inputs), -1).mean(axis=1, dtype=np.float64)
        return {"mean_intensity": (means - low) / (high - low)}
    if is_text(metadata):
        pad_id = int((metadata.get("tokenizer") or {}).get("pad_id", 0))
        values = {"tokens": (inputs != pad_id).sum(axis=1).astype(np.float64)}
        if texts is not None:
            values["characters"] = np.fromiter(map(len, texts), np.float64, len(texts))
        return values
    spec = metadata["input"]
    scale = spec.get("feature_scale")
    if scale is None:
        raise ConfigError(
            "the model's predictor.json has no input.feature_scale: export it again "
            "(`make export`) to monitor its inputs."
        )
    z = (inputs.astype(np.float64) - np.asarray(scale["offset"])) / np.asarray(scale["scale"])
    return Columns(z, [str(column) for column in spec["columns"]])


class Columns(Mapping[str, np.ndarray]):
    """``{column: values}`` of a 2-D batch, read-only, that keeps the batch itself (``matrix``,
    ``columns``): ``RequestLog.record`` bins every column in one numpy call, and no per-column
    array is made unless asked for."""

    def __init__(self, matrix: np.ndarray, columns: list[str]) -> None:
        self.matrix, self.columns = matrix, columns
        self._index = {column: i for i, column in enumerate(columns)}

    def __getitem__(self, column: str) -> np.ndarray:
        return self.matrix[:, self._index[column]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


def bin_counts(edges: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, int]:
    """``(counts, nonfinite)``: ``values`` counted on ``edges`` (``len(edges) + 1`` bins, the
    first and last open) and how many were NaN or infinite (not in any bin)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(values)
    nonfinite = int(values.size - np.count_nonzero(finite))
    if nonfinite:
        values = values[finite]
    index = np.searchsorted(edges, values, side="right")
    return np.bincount(index, minlength=len(edges) + 1), nonfinite


def histogram_quantile(
    edges: Sequence[float] | np.ndarray, counts: Sequence[int] | np.ndarray, q: float
) -> float | None:
    """The ``q`` quantile of values binned on ``edges``: the upper edge of the bin where the
    cumulative count reaches it (an upper bound, one bin wide); None without values."""
    binned = np.asarray(counts)
    total = int(binned.sum())
    if total == 0:
        return None
    index = int(np.searchsorted(np.cumsum(binned), q * total, side="left"))
    return float(edges[min(index, len(edges) - 1)])


def utc(seconds: float) -> str:
    """A time as UTC ISO 8601 with milliseconds, ``2026-01-01T00:00:00.000Z``."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Window:
    """The counts of one window; its arrays are added to in place."""

    def __init__(self, start: float, slots: int, classes: int | None) -> None:
        self.start = start
        self.requests = 0
        self.rows = 0
        self.statuses: dict[int, int] = {}
        self.latency = np.zeros(len(LATENCY_EDGES) + 1, dtype=np.int64)
        self.latency_max = 0.0
        self.inputs = np.zeros(slots, dtype=np.int64)
        size = classes if classes is not None else len(VALUE_EDGES) + 1
        self.predictions = np.zeros(size, dtype=np.int64)


class RequestLog:
    """Summaries of what the service receives, one JSON line per window, appended to ``path``.

    ``record`` is thread-safe and cheap: each call bins its values with numpy outside the lock
    and adds the counts under it (no raw value is kept). A window ends after ``every_requests``
    requests, or on the first request or background tick ``every_s`` seconds after it began
    (``background``: a thread that ends windows while no request comes), or at ``close``.
    Each line is written by one ``os.write`` to the file opened with ``O_APPEND``: lines of
    several writers never interleave, and a reader sees whole lines (``monitor`` ignores a last
    line without its newline, which only a crash mid-write leaves).

    ``path`` None: monitoring is off, ``record`` and ``close`` do nothing. A path that cannot be
    written raises ``ConfigError`` here, at the service's start, not at the first window.
    ``clock``: seconds since the epoch (tests inject their own).
    """

    def __init__(
        self,
        path: str | Path | None,
        metadata: dict,
        every_s: float = 60.0,
        every_requests: int = 1000,
        *,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.every_s = float(every_s)
        self.every_requests = int(every_requests)
        self.clock = clock
        self.write_errors = 0
        self._closed = False
        self._lock = threading.Lock()  # the window's counts
        self._write_lock = threading.Lock()  # the order of the lines
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.path is None:
            return
        self._bins = input_bins(metadata)
        self._classes = (
            int(metadata["output"]["shape"][-1]) if answers_probabilities(metadata) else None
        )
        self._model = _model_identity(metadata)
        # Each key's slots in one flat array: its bins, then one for non-finite values. Keys of
        # the same bins are contiguous, so a batch is counted with one bincount per bins name.
        self._offsets: dict[str, int] = {}
        self._groups: dict[str, list[str]] = {}
        for key, name in self._bins.items():
            self._groups.setdefault(name, []).append(key)
        slots = 0
        for name, keys in self._groups.items():
            for key in keys:
                self._offsets[key] = slots
                slots += len(EDGES[name]) + 2
        self._slots = slots
        self._keys = list(self._bins)
        self._group_offsets = {
            name: np.asarray([self._offsets[key] for key in keys])
            for name, keys in self._groups.items()
        }
        self._check_writable(self.path)
        self._window = _Window(self.clock(), slots, self._classes)
        if background:
            self._thread = threading.Thread(target=self._tick, name="monitoring-log", daemon=True)
            self._thread.start()

    # ---- recording ------------------------------------------------------------------------------

    def record(
        self,
        *,
        status: int,
        latency_ms: float,
        rows: int = 0,
        values: Mapping[str, np.ndarray] | None = None,
        predictions: np.ndarray | None = None,
    ) -> None:
        """Counts one request: its HTTP status, latency, rows, monitored values
        (``monitored_values``) and predictions (probabilities ``(n, classes)`` or class indices
        for classification; values for regression)."""
        if self.path is None or self._closed:
            return
        inputs = self._input_counts(values) if values else None
        predicted = self._prediction_counts(predictions) if predictions is not None else None
        latency_bin = int(np.searchsorted(LATENCY_EDGES, latency_ms, side="right"))
        with self._lock:
            window = self._window
            window.requests += 1
            window.rows += int(rows)
            window.statuses[int(status)] = window.statuses.get(int(status), 0) + 1
            window.latency[latency_bin] += 1
            window.latency_max = max(window.latency_max, float(latency_ms))
            if inputs is not None:
                window.inputs += inputs
            if predicted is not None:
                window.predictions += predicted
            due = self._due(window)
        if due:
            self.flush(only_if_due=True)

    def _input_counts(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        table = values if isinstance(values, Columns) else None  # a table's batch: all at once
        if table is not None and len(self._groups) == 1 and table.columns == self._keys:
            matrix = table.matrix
            name = next(iter(self._groups))
            index = np.searchsorted(EDGES[name], matrix, side="right")
            index[~np.isfinite(matrix)] = len(EDGES[name]) + 1  # the non-finite slot
            index += self._group_offsets[name]
            return np.bincount(index.ravel(), minlength=self._slots)
        unknown = set(values) - set(self._offsets)
        if unknown:
            raise ValueError(f"not monitored keys {sorted(unknown)}; expected {list(self._bins)}")
        counts = np.zeros(self._slots, dtype=np.int64)
        for name, keys in self._groups.items():
            edges, width = EDGES[name], len(EDGES[name]) + 2
            if table is not None and table.columns == keys:
                present, block = keys, table.matrix
            else:
                present = [key for key in keys if key in values]
                if not present:
                    continue
                columns = [np.asarray(values[key], dtype=np.float64).ravel() for key in present]
                if len({len(c) for c in columns}) > 1:  # not one row each: one key at a time
                    for key, column in zip(present, columns, strict=True):
                        found, bad = bin_counts(edges, column)
                        start = self._offsets[key]
                        counts[start : start + width - 1] += found
                        counts[start + width - 1] += bad
                    continue
                block = np.column_stack(columns)  # (rows, keys)
            index = np.searchsorted(edges, block, side="right")
            index[~np.isfinite(block)] = width - 1  # the non-finite slot
            if present is keys:
                index += self._group_offsets[name]
            else:
                index += np.asarray([self._offsets[key] for key in present])
            counts += np.bincount(index.ravel(), minlength=self._slots)
        return counts

    def _prediction_counts(self, predictions: np.ndarray) -> np.ndarray:
        predictions = np.asarray(predictions)
        if self._classes is None:
            found, _ = bin_counts(VALUE_EDGES, predictions)
            return found
        if predictions.ndim == 2:  # probabilities: argmax is below the number of classes
            return np.bincount(predictions.argmax(axis=1), minlength=self._classes)
        classes = np.clip(predictions.ravel().astype(np.int64), 0, self._classes - 1)
        return np.bincount(classes, minlength=self._classes)

    def _due(self, window: _Window) -> bool:
        return window.requests >= self.every_requests or (
            window.requests > 0 and self.clock() - window.start >= self.every_s
        )

    # ---- writing --------------------------------------------------------------------------------

    def flush(self, only_if_due: bool = False) -> None:
        """Ends the window now (with ``only_if_due``: if it is due) and writes its line; a window
        without requests writes nothing."""
        if self.path is None:
            return
        with self._write_lock:  # windows end and are written in order
            with self._lock:
                window = self._window
                if window.requests == 0 or (only_if_due and not self._due(window)):
                    return
                end = self.clock()
                self._window = _Window(end, self._slots, self._classes)
            self._write(self.path, self._line(window, end))

    def close(self) -> None:
        """Writes the last window; later ``record`` calls do nothing."""
        if self.path is None or self._closed:
            return
        self._closed = True  # from now on record does nothing: the flush below is the last line
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _tick(self) -> None:
        while not self._stop.wait(min(self.every_s, 1.0)):
            self.flush(only_if_due=True)

    def _line(self, window: _Window, end: float) -> dict[str, Any]:
        inputs = {}
        for key, name in self._bins.items():
            start, width = self._offsets[key], len(EDGES[name]) + 2
            counts = window.inputs[start : start + width]
            inputs[key] = {
                "bins": name,
                "counts": counts[:-1].tolist(),
                "nonfinite": int(counts[-1]),
            }
        latency = window.latency
        predictions: dict[str, Any]
        if self._classes is not None:
            predictions = {"kind": "classes", "counts": window.predictions.tolist()}
        else:
            values = window.predictions.tolist()
            predictions = {"kind": "values", "bins": "values", "counts": values}
        names = {
            *self._bins.values(),
            "latency_ms",
            *(("values",) if self._classes is None else ()),
        }
        return {
            "bins_version": BINS_VERSION,
            "start": utc(window.start),
            "end": utc(end),
            "model": self._model,
            "requests": window.requests,
            "rows": window.rows,
            "statuses": {str(code): count for code, count in sorted(window.statuses.items())},
            "latency_ms": {
                "p50": _bounded(histogram_quantile(LATENCY_EDGES, latency, 0.5), window),
                "p99": _bounded(histogram_quantile(LATENCY_EDGES, latency, 0.99), window),
                "max": round(window.latency_max, 3),
                "bins": "latency_ms",
                "counts": latency.tolist(),
            },
            "inputs": inputs,
            "predictions": predictions,
            "edges": {name: EDGES[name].tolist() for name in sorted(names)},
        }

    def _write(self, path: Path, line: dict[str, Any]) -> None:
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(descriptor, data)
                while written < len(data):  # a short write (a full disk): the rest, in order
                    written += os.write(descriptor, data[written:])
            finally:
                os.close(descriptor)
        except OSError as error:  # the service answers on; say it once
            self.write_errors += 1
            if self.write_errors == 1:
                print(f"monitoring: cannot write {path}: {error}", file=sys.stderr)

    def _check_writable(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        except OSError as error:
            raise ConfigError(
                f"monitoring.log={path} cannot be written ({error.strerror or error}): "
                "choose a writable file, or monitoring.log=null to serve without monitoring."
            ) from None


def _bounded(quantile: float | None, window: _Window) -> float | None:
    """A quantile's bin edge, never above the largest latency seen."""
    return None if quantile is None else round(min(quantile, window.latency_max), 3)


def _model_identity(metadata: dict) -> dict[str, Any]:
    """Which model answered: what a log mixing models is told apart by (no inputs)."""
    versions = metadata.get("versions") or {}
    return {
        "data": (metadata.get("data") or {}).get("name"),
        "checkpoint_md5": (versions.get("checkpoint") or {}).get("md5"),
        "run_id": versions.get("run_id"),
    }
