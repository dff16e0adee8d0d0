"""Validate the processed data; stop the pipeline when it is bad.

    python -m <package>.data.validate [overrides]

Checks every split against its processed schema (dtypes, ranges, allowed labels, nulls, unique
ids, the shape of image rows, finite values), that no id is in two splits, and that val and
test are not drifted from train (``data.drift``). Every failure is reported at once, as a table
on the terminal and in ``reports/validation.json``; any failure exits 5 (bad data), so neither
DVC nor the Makefile goes on to training. The data itself is never modified.
"""

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from ..config import entry_point
from ..training.errors import fail
from .checks import (
    Failure,
    drift_failures,
    format_failures,
    overlapping_ids,
    schema_failures,
    write_report,
)
from .schemas import SPLITS, is_classification, schemas_for


def read_split(path: Path) -> tuple[pd.DataFrame | None, list[Failure]]:
    """A split as a DataFrame, or a failure saying why it could not be read."""
    if not path.is_file():
        return None, [Failure(path.name, "<file>", "exists", [str(path)])]
    try:
        return pd.read_parquet(path), []
    except Exception as error:  # an empty or truncated file: any reader error means unreadable
        return None, [Failure(path.name, "<file>", "readable parquet", [str(error)[:120]])]


def validate(cfg: DictConfig) -> list[Failure]:
    """Every failure of the processed data, or an empty list."""
    data = cfg.data
    _, processed_schema, features = schemas_for(data.name)
    processed_dir = Path(cfg.paths.processed_dir)
    splits, failures = {}, []
    for name in SPLITS:
        frame, unreadable = read_split(processed_dir / f"{name}.parquet")
        failures += unreadable
        if frame is not None:
            columns = ["id", *features, data.target]
            failures += schema_failures(processed_schema, frame, name, columns)
            splits[name] = frame
    if any(f.check in {"exists", "readable parquet"} for f in failures):
        return failures
    failures += overlapping_ids(splits)
    if not failures:  # drift statistics are meaningless on data that breaks its schema
        drift = OmegaConf.to_container(data.drift)
        for name in ("val", "test"):
            failures += drift_failures(
                splits["train"],
                splits[name],
                name,
                features,
                data.target,
                is_classification(data),
                drift,
            )
    return failures


@entry_point("validate", config_name="train")
def main(cfg: DictConfig) -> None:
    failures = validate(cfg)
    report = Path(cfg.paths.reports_dir) / "validation.json"
    write_report(report, failures, {"dataset": cfg.data.name, "splits": list(SPLITS)})
    if failures:
        fail(
            "validate",
            f"validation failed: {len(failures)} check(s) broke for {cfg.data.name!r} in "
            f"{cfg.paths.processed_dir}/ (report: {report}). Training stops here; fix the data "
            f"or its source and run prepare again.\n{format_failures(failures)}",
            5,  # bad data, as for every command (train.py's docstring lists the codes)
        )
    print(f"validation passed: {cfg.data.name} ({', '.join(SPLITS)}); report: {report}")


if __name__ == "__main__":
    main()
