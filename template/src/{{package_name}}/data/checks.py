"""The checks behind ``validate``: schemas, disjoint splits and drift, and their report.

Every check returns ``Failure`` rows instead of raising, so one run reports every problem at
once; the entry points decide what to do with them.
"""

import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pandera.pandas as pa

from ..errors import DataValidationError  # raised here, and importable from here


@dataclass
class Failure:
    """One failed check: where (table, column), which check, and examples of what failed."""

    table: str
    column: str
    check: str
    failing_values: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    count: int = 0


def rebuild_hint() -> str:
    """The commands that write the processed data again, for messages about a broken file."""
    package = __name__.split(".")[0]
    return (
        f"rebuild it with `make prepare` (python -m {package}.data.prepare), then check it with "
        f"`make validate` (python -m {package}.data.validate)"
    )


def read_processed(path: str | Path, content: bytes | None = None) -> pd.DataFrame:
    """A processed split (parsed from ``content``, the file's bytes, when given), or a
    ``DataValidationError`` naming the file and how to rebuild it.

    pyarrow raises several types (``ArrowInvalid``, ``OSError``) for a file that is empty,
    truncated or not Parquet; every command that reads the splits reports it the same way.
    """
    try:
        return pd.read_parquet(io.BytesIO(content) if content is not None else path)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise unreadable_parquet(path, error) from None


def unreadable_parquet(path: str | Path, error: Exception) -> DataValidationError:
    """The error for a processed file pyarrow cannot read: its name, the reason, the rebuild."""
    reason = " ".join(str(error).split())
    return DataValidationError(
        f"{path} cannot be read as Parquet ({reason}): it is empty, truncated or not a "
        f"Parquet file; {rebuild_hint()}."
    )


def read_stats(path: str | Path) -> dict:
    """``stats.json`` (the feature scaling prepare fitted), or a ``DataValidationError``."""
    try:
        stats = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError included
        reason = " ".join(str(error).split())
        raise DataValidationError(
            f"{path} cannot be read as JSON ({reason}): it is empty, truncated or corrupt; "
            f"{rebuild_hint()}."
        ) from None
    if not isinstance(stats, dict) or not {"features", "offset", "scale"} <= set(stats):
        raise DataValidationError(
            f"{path} does not hold the feature scaling prepare writes (features, offset and "
            f"scale); {rebuild_hint()}."
        )
    return stats


def _plain(value):
    """A JSON-friendly version of a failure case (numpy scalars, NaN and inf included)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


class SchemaLike(Protocol):
    """What ``schema_failures`` reads of a schema that is not a pandera model class: a stand-in
    with a model's name and ``validate`` (batch.py's raw schema less one column)."""

    __name__: str

    def validate(self, frame: pd.DataFrame, /, *, lazy: bool = ...) -> Any: ...


def schema_failures(
    schema: type[pa.DataFrameModel] | SchemaLike,
    frame: pd.DataFrame,
    table: str,
    columns: list[str],
) -> list[Failure]:
    """Validate lazily: every failing column and check, with up to five examples each.

    ``columns`` are the columns the table must have; a missing one is reported by name (a
    schema whose features match a pattern cannot tell which one is gone).
    """
    failures = [
        Failure(table, column, "column_present", [], [], len(frame))
        for column in columns
        if column not in frame.columns
    ]
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.astype({"column": str, "check": str})
        wrong_dtype = set(cases.loc[cases["check"].str.startswith("dtype("), "column"])
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            rows = [int(i) for i in group["index"].dropna().unique()[:5]]
            values = [_plain(v) for v in group["failure_case"].unique()[:5]]
            if check == "column_in_schema":  # an unexpected column: name it
                failures += [Failure(table, str(v), "column_in_schema", [v]) for v in values]
                continue
            if column in wrong_dtype and _check_raised(group):
                continue  # a range check cannot compare text with numbers: the dtype row says it
            # A check on the whole table reports the schema's name as its column.
            column_name = "<table>" if column == schema.__name__ else column
            failures.append(Failure(table, column_name, check, values, rows, len(group)))
    return failures


def _check_raised(group: pd.DataFrame) -> bool:
    """Whether pandera reports a check that raised (``TypeError(...)``) rather than failed rows."""
    cases = group["failure_case"].astype(str)
    return bool(group["index"].isna().all() and cases.str.match(r"^\w+(Error|Exception)\(").all())


def range_failures(
    frame: pd.DataFrame,
    table: str,
    columns: list[str],
    value_range: tuple[float, float],
    setting: str,
) -> list[Failure]:
    """Values of ``columns`` outside ``value_range``, the range a config ``setting`` gives.

    For ranges that belong to a dataset's config rather than to its schema, such as the raw
    pixel values of images (``data.pixel_range``: 0..255 for 8-bit images).
    """
    low, high = value_range
    failures = []
    for column in columns:
        values = frame[column]
        outside = values[(values < low) | (values > high)]
        if len(outside):
            failures.append(
                Failure(
                    table,
                    column,
                    f"in_range({low:g}, {high:g}) ({setting})",
                    [_plain(v) for v in outside.unique()[:5]],
                    [int(i) for i in outside.index[:5]],
                    len(outside),
                )
            )
    return failures


def overlapping_ids(splits: dict[str, pd.DataFrame]) -> list[Failure]:
    """Each id must belong to one split only: an overlap leaks training data into evaluation."""
    failures = []
    names = list(splits)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = np.intersect1d(splits[first]["id"], splits[second]["id"])
            if len(shared):
                failures.append(
                    Failure(
                        f"{first}+{second}",
                        "id",
                        "disjoint_splits",
                        [int(v) for v in shared[:5]],
                        [],
                        len(shared),
                    )
                )
    return failures


def row_hashes(frame: pd.DataFrame, features: list[str]) -> pd.Series:
    """One 64-bit hash per row of its feature values: the content, without the id or label."""
    return pd.util.hash_pandas_object(frame[features], index=False)


def duplicated_content(
    splits: dict[str, pd.DataFrame], features: list[str], max_share: float
) -> tuple[list[Failure], list[Failure]]:
    """Rows with the same feature values: ``(failures, warnings)``.

    Ids say nothing about content: a test row copied into train under a new id passes the id
    check. So rows are compared by a hash of their feature values. A row of one split whose
    features are in another split always fails, whatever its label: the model is then scored on
    inputs it trained on. Within one split, repeated rows only weight some inputs more; real data
    has a few (a sensor's idle reading, a blank image), so they are a warning up to
    ``max_share`` of the split's rows (``data.max_duplicate_share``) and fail above it, where
    they are more likely a join that fanned out or a file appended twice.
    """
    hashes = {name: row_hashes(frame, features) for name, frame in splits.items()}
    failures: list[Failure] = []
    warnings: list[Failure] = []
    names = list(splits)
    for i, first in enumerate(names):
        seen = hashes[first].to_numpy()  # np.isin sorts: no Python set of every row's hash
        for second in names[i + 1 :]:
            shared = np.isin(hashes[second].to_numpy(), seen)
            if shared.any():
                ids = splits[second]["id"].to_numpy()[shared]
                failures.append(
                    Failure(
                        f"{first}+{second}",
                        "<features>",
                        "disjoint_content (same feature values in both splits; ids of "
                        f"{second} rows)",
                        [_plain(v) for v in ids[:5]],
                        [int(r) for r in np.flatnonzero(shared)[:5]],
                        int(shared.sum()),
                    )
                )
    for name, frame in splits.items():
        repeated = hashes[name].duplicated(keep="first").to_numpy()
        if not repeated.any():
            continue
        share = float(repeated.mean())
        too_many = share > max_share
        failure = Failure(
            name,
            "<features>",
            f"unique_content ({share:.1%} of rows repeat an earlier row's feature values; "
            f"{'more than' if too_many else 'within'} data.max_duplicate_share={max_share:g})",
            [_plain(v) for v in frame["id"].to_numpy()[repeated][:5]],
            [int(r) for r in np.flatnonzero(repeated)[:5]],
            int(repeated.sum()),
        )
        (failures if too_many else warnings).append(failure)
    return failures, warnings


def ks_drift(statistic: float, pvalue: float, drift: Mapping) -> str | None:
    """The one gate of a distribution shift, for ``validate`` and ``monitor`` alike: the check's
    wording when the Kolmogorov-Smirnov ``statistic`` exceeds ``drift["max_ks"]`` *and* the
    shift is significant (``pvalue`` below ``drift["alpha"]``), else None.

    A p-value alone flags negligible shifts on large data and misses large ones on small data;
    the effect size alone flags noise on small data. Both must agree.
    """
    if statistic > drift["max_ks"] and pvalue < drift["alpha"]:
        return f"drift: KS statistic {statistic:.3f} > {drift['max_ks']} (p={pvalue:.2g})"
    return None


def label_distance(first: Mapping, second: Mapping) -> float:
    """Total variation distance between two label distributions given as counts (or shares)
    per label: half the sum of the absolute differences of the shares, 0 to 1."""
    p, q = pd.Series(first, dtype=float), pd.Series(second, dtype=float)
    p, q = (s / s.sum() if s.sum() > 0 else s for s in (p, q))
    return 0.5 * float(p.subtract(q, fill_value=0.0).abs().sum())


def label_drift(tvd: float, drift: Mapping) -> str | None:
    """The gate of a label (or predicted class) shift: the check's wording when the total
    variation distance ``tvd`` exceeds ``drift["max_label_tvd"]``, else None (also when the
    data has no such threshold: regression)."""
    if "max_label_tvd" in drift and tvd > drift["max_label_tvd"]:
        return f"drift: label total variation distance {tvd:.3f} > {drift['max_label_tvd']}"
    return None


def drift_failures(
    train: pd.DataFrame,
    other: pd.DataFrame,
    table: str,
    features: list[str],
    target: str,
    classification: bool,
    drift: dict,
) -> list[Failure]:
    """Distribution shift between train and another split, gated on effect size.

    A feature fails when ``ks_drift`` says so (its KS statistic above ``max_ks`` and significant
    at ``alpha``); labels compare by total variation distance (``label_drift``).
    """
    from scipy import stats  # imported here: loading data for training needs no scipy

    failures = []
    columns = features if classification else [*features, target]
    for column in columns:
        a, b = train[column].to_numpy(), other[column].to_numpy()
        if len(a) == 0 or len(b) == 0:
            continue
        result = stats.ks_2samp(a, b)
        check = ks_drift(result.statistic, result.pvalue, drift)
        if check:
            failures.append(
                Failure(
                    table,
                    column,
                    check,
                    [round(float(np.mean(a)), 4), round(float(np.mean(b)), 4)],
                    [],
                    len(b),
                )
            )
    if classification:
        tvd = label_distance(train[target].value_counts(), other[target].value_counts())
        check = label_drift(tvd, drift)
        if check:
            failures.append(Failure(table, target, check, [], [], len(other)))
    return failures


def format_failures(failures: list[Failure]) -> str:
    """A plain-text table a person can read in a terminal or a CI log."""
    header = ("table", "column", "check", "failing values", "rows", "count")
    # Names (table, column, check) are shown whole, whatever their length: a cut check name
    # hides which check broke. Only the examples of failing values and rows are shortened.
    lines = [
        (
            f.table,
            f.column,
            f.check,
            _shorten(", ".join(map(str, f.failing_values))),
            _shorten(", ".join(map(str, f.rows))),
            str(f.count),
        )
        for f in failures
    ]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def render(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

    return "\n".join([render(header), render(tuple("-" * w for w in widths)), *map(render, lines)])


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_report(
    path: Path, failures: list[Failure], checked: dict, warnings: Sequence[Failure] = ()
) -> None:
    """reports/validation.json: DVC tracks it as a metric, and the train stage depends on it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "passed": not failures,
        "failures": len(failures),
        "checked": checked,
        "details": [asdict(f) for f in failures],
        "warnings": [asdict(f) for f in warnings],
    }
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


@dataclass
class Validation:
    """What ``validate`` found, and the md5 of each file it checked (what the record holds)."""

    failures: list[Failure] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    images: str | None = None  # image data: the digest of its files (record.image_files_digest)


def read_processed_files(
    processed_dir: Path,
    extras: Iterable[str],
    check: Callable[[pd.DataFrame, str], list[Failure]],
) -> tuple[Validation, dict[str, bytes], dict[str, pd.DataFrame]]:
    """The splits and the ``extras`` files of ``processed_dir``, each read once: their md5s in the
    result (what the record holds: exactly what was checked), each readable split checked by
    ``check(frame, split)``. Returns the result so far, the files' bytes and the splits."""
    from .schemas import SPLITS
    from .version import bytes_md5

    result, contents, splits = Validation(), {}, {}
    for name in dict.fromkeys((*(f"{s}.parquet" for s in SPLITS), *extras)):
        path = processed_dir / name
        if path.is_file():
            contents[name] = path.read_bytes()
            result.files[name] = bytes_md5(contents[name])
    for name in SPLITS:
        file = f"{name}.parquet"
        frame, unreadable = read_split(processed_dir / file, contents.get(file))
        result.failures += unreadable
        if frame is not None:
            result.failures += check(frame, name)
            splits[name] = frame
    return result, contents, splits


def read_split(
    path: Path, content: bytes | None = None
) -> tuple[pd.DataFrame | None, list[Failure]]:
    """A split as a DataFrame (from ``content``, the file's bytes, when given), or a failure
    saying why it could not be read."""
    if content is None and not path.is_file():
        return None, [Failure(path.name, "<file>", "exists", [str(path)])]
    try:
        return pd.read_parquet(io.BytesIO(content) if content is not None else path), []
    except Exception as error:  # an empty or truncated file: any reader error means unreadable
        return None, [Failure(path.name, "<file>", "readable parquet", [str(error)[:120]])]
