"""``monitor``: the service's recent inputs (``monitoring.log``) against the training data.

The log's lines (``serving/monitoring.py``) of the last ``monitoring.window_hours`` are summed;
the training split (``paths.processed_dir``) is counted on the same bins, read from the log
itself; each monitored key is compared with ``data.drift``'s gates, the ones ``validate`` applies
between its splits (``data.checks.ks_drift`` and ``label_drift``):

- inputs (table features in standard units, images' mean intensity, texts' length in characters
  and tokens) and, for regression, the predicted values against the training targets: a binned
  two-sample Kolmogorov-Smirnov test (``binned_ks``), failing when the statistic exceeds
  ``max_ks`` and its p-value is below ``alpha``;
- for classification, the predicted classes against the training labels: total variation
  distance above ``max_label_tvd``.

With fewer than ``monitoring.min_rows`` inputs in the window there is no verdict.
"""

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from ..config import as_dict
from ..data.checks import DataValidationError, ks_drift, label_distance, label_drift, read_processed
from ..data.schemas import has_class_labels, is_images, is_text, pixel_range, schemas_for
from ..errors import ConfigError
from .monitoring import BINS_VERSION, bin_counts, histogram_quantile

REPORT_MD = "monitoring.md"
REPORT_JSON = "monitoring.json"


def binned_ks(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """``(statistic, p)`` of a two-sample Kolmogorov-Smirnov test on two histograms of the same
    bins: the largest difference of the two empirical CDFs at the bin edges, and its asymptotic
    p-value (Kolmogorov's distribution, ``scipy.stats.kstwobign``, at ``D * sqrt(n m / (n + m))``).

    The CDFs are compared at the edges only, not at every value, so the statistic is a lower
    bound of the exact one on the raw values (equal when no bin holds values of both samples on
    either side of the largest gap): a shift within one bin (0.25 standard deviations for a
    table feature) is not seen, and the p-value is correspondingly conservative. NaN for an
    empty histogram.
    """
    from scipy import stats  # as validate: only the checks need scipy

    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    n, m = first.sum(), second.sum()
    if n == 0 or m == 0:
        return math.nan, math.nan
    statistic = float(np.max(np.abs(np.cumsum(first) / n - np.cumsum(second) / m)))
    p = float(stats.kstwobign.sf(statistic * math.sqrt(n * m / (n + m))))
    return statistic, p


# ---- the log -------------------------------------------------------------------------------------


def read_log(path: Path) -> list[dict[str, Any]]:
    """The log's lines, or a ``DataValidationError`` naming the file. A last line without its
    newline (a service stopped mid-write) is left out; any other unreadable line is an error."""
    package = __name__.split(".")[0]
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DataValidationError(
            f"{path} does not exist: the service writes it (`make serve`, python -m "
            f"{package}.serve, with monitoring.log={path}); serve some requests first, or "
            "point monitoring.log at the service's log."
        ) from None
    except OSError as error:
        raise DataValidationError(f"{path} cannot be read ({error.strerror or error}).") from None
    lines = content.split(b"\n")
    lines = lines[:-1]  # after the last newline: nothing, or a line cut short
    result = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or "inputs" not in entry or "end" not in entry:
                raise ValueError("not a summary line of the service")
        except (ValueError, UnicodeDecodeError) as error:
            raise DataValidationError(
                f"{path}, line {number}, cannot be read as the service's monitoring summary "
                f"({' '.join(str(error).split())[:120]}): the file is not a monitoring log, or "
                "was edited; move it away and let `make serve` write a new one."
            ) from None
        if entry.get("bins_version") != BINS_VERSION:
            raise DataValidationError(
                f"{path}, line {number}: bins version {entry.get('bins_version')}, this "
                f"project's monitor reads version {BINS_VERSION}; set monitoring.window_hours "
                "to leave older lines out, or start a new log."
            )
        result.append(entry)
    return result


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def recent(
    lines: list[dict[str, Any]], hours: float | None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The lines whose window ended in the last ``hours`` (None: all)."""
    if hours is None:
        return lines
    since = (now or datetime.now(timezone.utc)) - timedelta(hours=float(hours))
    return [line for line in lines if parse_time(line["end"]) >= since]


def summed(lines: list[dict[str, Any]], path: Path) -> dict[str, Any]:
    """The lines' counts added up (their bins must agree: the same edges for every key)."""
    total: dict[str, Any] = {
        "lines": len(lines),
        "start": min((line["start"] for line in lines), default=None),
        "end": max((line["end"] for line in lines), default=None),
        "requests": 0,
        "rows": 0,
        "statuses": {},
        "latency_max": 0.0,
        "latency": None,
        "inputs": {},
        "predictions": None,
        "edges": {},
        "models": [],
    }
    for line in lines:
        for name, edges in line["edges"].items():
            if total["edges"].setdefault(name, edges) != edges:
                raise DataValidationError(
                    f"{path}: the lines of the window bin '{name}' on different edges; "
                    "set monitoring.window_hours to compare the newest lines only, or start a "
                    "new log."
                )
        if line.get("model") not in total["models"]:
            total["models"].append(line.get("model"))
        total["requests"] += int(line["requests"])
        total["rows"] += int(line["rows"])
        for code, count in line["statuses"].items():
            total["statuses"][code] = total["statuses"].get(code, 0) + int(count)
        latency = line["latency_ms"]
        total["latency_max"] = max(total["latency_max"], float(latency["max"]))
        total["latency"] = _add(total["latency"], latency["counts"])
        for key, entry in line["inputs"].items():
            into = total["inputs"].setdefault(key, {"bins": entry["bins"], "counts": None})
            if into["bins"] != entry["bins"]:
                raise DataValidationError(f"{path}: '{key}' is binned on different bins.")
            into["counts"] = _add(into["counts"], entry["counts"])
            into["nonfinite"] = into.get("nonfinite", 0) + int(entry.get("nonfinite", 0))
        predictions = line.get("predictions")
        if predictions:
            if total["predictions"] is None:
                total["predictions"] = {**predictions, "counts": None}
            elif total["predictions"]["kind"] != predictions["kind"]:
                raise DataValidationError(
                    f"{path}: the window holds predictions of different models (classes and "
                    "values, or another number of classes); start a new log."
                )
            total["predictions"]["counts"] = _add(
                total["predictions"]["counts"], predictions["counts"]
            )
    return total


def _add(total: np.ndarray | None, counts: list[int]) -> np.ndarray:
    added = np.asarray(counts, dtype=np.int64)
    if total is not None and len(total) != len(added):
        raise DataValidationError(
            "the window's lines count on different bins (predictions of models with another "
            "number of classes?); start a new log."
        )
    return added if total is None else total + added


# ---- the training data ---------------------------------------------------------------------------


def training_values(cfg: DictConfig) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``(values per monitored key, targets)`` of the training split, in the units the service
    monitors (``monitored_values``)."""
    data = cfg.data
    processed_dir = Path(cfg.paths.processed_dir)
    train = read_processed(processed_dir / "train.parquet")
    targets = train[data.target].to_numpy()
    if is_images(data):
        from ..data.images import decode, read_images_record

        root, _ = read_images_record(processed_dir)
        low, high = pixel_range(data)
        channels = int(data.image_shape[0])
        means = np.fromiter(
            (decode(root / p, channels).double().mean().item() for p in train["path"]),
            np.float64,
            len(train),
        )
        return {"mean_intensity": (means - low) / (high - low)}, targets
    if is_text(data):
        from ..data.text import encode, load_tokenizer

        tokenizer, _ = load_tokenizer(processed_dir)
        texts = train["text"].astype(str).tolist()
        tokens = encode(tokenizer, texts, int(data.max_length))
        return {
            "characters": train["text"].astype(str).str.len().to_numpy(np.float64),
            "tokens": np.fromiter(map(len, tokens), np.float64, len(tokens)),
        }, targets
    features = schemas_for(data.name)[2]
    return {f: train[f].to_numpy(np.float64) for f in features}, targets


# ---- the comparison ------------------------------------------------------------------------------


def compare(cfg: DictConfig, total: dict[str, Any], path: Path) -> dict[str, Any]:
    """The report: per monitored key and for the predictions, the statistic, p and verdict."""
    data = cfg.data
    drift = as_dict(data.drift, resolve=True)
    classification = has_class_labels(data)
    enough = total["rows"] >= int(cfg.monitoring.min_rows)
    keys = total["inputs"]
    reference, targets = training_values(cfg) if keys or total["predictions"] else ({}, None)
    missing = sorted(set(keys) - set(reference))
    if missing:
        raise DataValidationError(
            f"{path} monitors {missing}, which the training data ({data.name}, "
            f"{cfg.paths.processed_dir}) does not have: the service serves a model of another "
            "dataset, or the log is another project's; point monitoring.log at this model's log."
        )
    inputs = {}
    for key, entry in keys.items():
        edges = np.asarray(total["edges"][entry["bins"]])
        train_counts, _ = bin_counts(edges, reference[key])
        inputs[key] = _ks_entry(entry["counts"], train_counts, drift, enough)
        inputs[key]["nonfinite"] = entry.get("nonfinite", 0)
    predictions = None
    if total["predictions"] is not None and total["predictions"]["counts"] is not None:
        served = total["predictions"]["counts"]
        assert targets is not None  # read with the training values when there are predictions
        if (total["predictions"]["kind"] == "classes") != classification:
            raise DataValidationError(
                f"{path} holds predicted {total['predictions']['kind']}, but {data.name} is a "
                f"{'classification' if classification else 'regression'} dataset: the service "
                "serves a model of another task; point monitoring.log at this model's log."
            )
        if classification:
            labels = np.bincount(targets.astype(np.int64), minlength=len(served))
            tvd = label_distance(dict(enumerate(served.tolist())), dict(enumerate(labels.tolist())))
            check = label_drift(tvd, drift) if enough and served.sum() else None
            predictions = {
                "compared_with": "training labels",
                "tvd": round(tvd, 6),
                "counts": served.tolist(),
                "training_counts": labels.tolist(),
                "verdict": _verdict(check, enough),
                "check": check,
            }
        else:
            edges = np.asarray(total["edges"][total["predictions"]["bins"]])
            train_counts, _ = bin_counts(edges, targets)
            predictions = _ks_entry(served, train_counts, drift, enough)
            predictions["compared_with"] = "training targets"
    failures = [f"{key}: {entry['check']}" for key, entry in inputs.items() if entry["check"]]
    if predictions and predictions["check"]:
        failures.append(f"predictions: {predictions['check'].replace('label ', 'class ', 1)}")
    latency = total["latency"]
    latency_edges = total["edges"].get("latency_ms", [])
    return {
        "verdict": "drift" if failures else ("no drift" if enough else "no verdict"),
        "log": str(path),
        "window": {
            "hours": cfg.monitoring.window_hours,
            "lines": total["lines"],
            "start": total["start"],
            "end": total["end"],
        },
        "requests": total["requests"],
        "rows": total["rows"],
        "min_rows": int(cfg.monitoring.min_rows),
        "statuses": total["statuses"],
        "latency_ms": {
            "p50": _latency(latency_edges, latency, 0.5, total),
            "p99": _latency(latency_edges, latency, 0.99, total),
            "max": total["latency_max"] if total["requests"] else None,
        },
        "models": total["models"],
        "thresholds": drift,
        "inputs": inputs,
        "predictions": predictions,
        "failures": failures,
    }


def _ks_entry(served, train_counts, drift: dict, enough: bool) -> dict[str, Any]:
    statistic, p = binned_ks(served, train_counts)
    check = ks_drift(statistic, p, drift) if enough and not math.isnan(statistic) else None
    return {
        "statistic": None if math.isnan(statistic) else round(statistic, 6),
        "p": None if math.isnan(p) else float(f"{p:.4g}"),
        "rows": int(np.sum(served)),
        "training_rows": int(np.sum(train_counts)),
        "verdict": _verdict(check, enough),
        "check": check,
    }


def _verdict(check: str | None, enough: bool) -> str:
    return "drift" if check else ("ok" if enough else "no verdict")


def _latency(edges, counts, q: float, total: dict[str, Any]) -> float | None:
    if counts is None or not len(edges):
        return None
    value = histogram_quantile(edges, counts, q)
    return None if value is None else round(min(value, total["latency_max"]), 3)


# ---- the report ----------------------------------------------------------------------------------


def write_reports(report: dict[str, Any], reports_dir: Path) -> tuple[Path, Path]:
    """``monitoring.json`` (the report) and ``monitoring.md`` (the same, to read)."""
    as_json, as_md = reports_dir / REPORT_JSON, reports_dir / REPORT_MD
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        as_json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        as_md.write_text(markdown(report), encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"paths.reports_dir={reports_dir}: the monitoring report cannot be written there "
            f"({error.strerror or error}); choose a writable folder."
        ) from None
    return as_json, as_md


def markdown(report: dict[str, Any]) -> str:
    window = report["window"]
    hours = "the whole log" if window["hours"] is None else f"the last {window['hours']} hours"
    lines = [
        "# Monitoring: recent inputs against the training data",
        "",
        f"**Verdict: {report['verdict']}**" + _verdict_words(report),
        "",
        f"- log: `{report['log']}`, {hours}: {window['lines']} summaries, "
        f"{window['start'] or '-'} to {window['end'] or '-'}",
        f"- requests: {report['requests']}, rows: {report['rows']} (no verdict below "
        f"monitoring.min_rows={report['min_rows']})",
        f"- statuses: {', '.join(f'{k}: {v}' for k, v in report['statuses'].items()) or '-'}",
        f"- latency (ms): p50 {report['latency_ms']['p50']}, p99 {report['latency_ms']['p99']}, "
        f"max {report['latency_ms']['max']} (p50 and p99: upper edges of 9% bins)",
        "- thresholds (data.drift): "
        + ", ".join(f"{k}={v}" for k, v in report["thresholds"].items()),
        "",
    ]
    if report["inputs"]:
        lines += [
            "| input | KS statistic | p | rows | training rows | verdict |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for key, entry in report["inputs"].items():
            lines.append(
                f"| {key} | {entry['statistic']} | {entry['p']} | {entry['rows']} | "
                f"{entry['training_rows']} | {entry['verdict']} |"
            )
        lines.append("")
    predictions = report["predictions"]
    if predictions:
        if "tvd" in predictions:
            lines.append(
                f"Predicted classes against the {predictions['compared_with']}: total variation "
                f"distance {predictions['tvd']} ({predictions['verdict']}); served "
                f"{predictions['counts']}, training {predictions['training_counts']}."
            )
        else:
            lines.append(
                f"Predicted values against the {predictions['compared_with']}: KS statistic "
                f"{predictions['statistic']}, p {predictions['p']} ({predictions['verdict']})."
            )
        lines.append("")
    lines += [
        "The KS statistics are computed on the service's histograms (binned): a lower bound of "
        "the statistic on the raw values. See docs: how-to monitor.",
        "",
    ]
    return "\n".join(lines)


def _verdict_words(report: dict[str, Any]) -> str:
    if report["verdict"] == "no verdict":
        return (
            f": {report['rows']} inputs in the window, fewer than monitoring.min_rows="
            f"{report['min_rows']}."
        )
    if report["failures"]:
        return ": " + "; ".join(report["failures"]) + "."
    return "."


def monitor(cfg: DictConfig) -> dict[str, Any]:
    """Reads the log, compares its recent window with the training data, writes the reports;
    returns the report (``report["verdict"]``: drift, no drift or no verdict)."""
    if cfg.monitoring.log is None:
        raise ConfigError("monitoring.log is null: there is no service log to monitor.")
    path = Path(str(cfg.monitoring.log))
    lines = recent(read_log(path), cfg.monitoring.window_hours)
    report = compare(cfg, summed(lines, path), path)
    reports = write_reports(report, Path(cfg.paths.reports_dir))
    report["reports"] = [str(p) for p in reports]
    return report
