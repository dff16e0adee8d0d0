"""Validate the processed data; stop the pipeline when it is bad.

    python -m <package>.data.validate [overrides]

Checks every split against its processed schema (dtypes, ranges, allowed labels, nulls, unique
ids, the shape of image rows, finite values), ``stats.json`` (the feature scaling), that no id
and no row content (feature values) is in two splits, that rows do not repeat within a split
beyond ``data.max_duplicate_share``, and that val and test are not drifted from train
(``data.drift``). Every failure is reported at once, as a table on the terminal and in
``reports/validation.json``; any failure exits 5 (bad data), so neither DVC nor the Makefile
goes on to training. The data itself is never modified. Image datasets are checked as
``inspect_images`` says: their manifests, and every file they list (decodable, channels, size,
value range; the same file content in two splits).

It also writes the validation record beside the data, ``<processed_dir>.validation.json``
(``data/processed.validation.json``): the md5 of exactly the files it checked and its verdict.
``train``, ``tune`` and ``evaluate`` compute the md5 of the files they are about to read and
refuse them (exit 5) unless a passing record matches (``record.require_validated``): data that
failed validation, or was changed since, or was never validated, is never trained on. There is no
switch to skip this: to train on data a check rejects, change the check (``data.drift``,
``data.max_duplicate_share``, ``data/schemas.py``), so that the decision is in the config and
in git.
"""

import json
import math
import os
from pathlib import Path

import pandera.pandas as pa
from omegaconf import DictConfig

from ..config import as_dict, check_settings, entry_point
from . import large
from .card import write_data_card
from .checks import (
    DataValidationError,
    Failure,
    Validation,
    drift_failures,
    duplicated_content,
    format_failures,
    overlapping_ids,
    read_processed_files,
    schema_failures,
    write_report,
)
from .record import DEFAULT_MAX_DUPLICATE_SHARE, checked_settings, record_path
from .schemas import (
    MANIFEST_COLUMNS,
    SPLITS,
    TEXT_COLUMNS,
    ImageManifest,
    TextSplit,
    has_class_labels,
    is_images,
    is_text,
    label_range_failures,
    pixel_range,
    schemas_for,
)
from .version import PROCESSED_FILES, digest, schema_digest


def stats_failures(content: bytes, features: list[str]) -> list[Failure]:
    """``stats.json``: the scaling of every feature, finite, with no zero scale."""
    table = "stats.json"
    try:
        stats = json.loads(content)
        offset, scale = list(stats["offset"]), list(stats["scale"])
        named = list(stats["features"])
    except (ValueError, KeyError, TypeError) as error:
        return [
            Failure(
                table, "<file>", "readable JSON with features, offset, scale", [str(error)[:120]]
            )
        ]
    failures = []
    if named != list(features) or len(offset) != len(features) or len(scale) != len(features):
        failures.append(
            Failure(
                table, "features", "one offset and scale per schema feature", [], [], len(named)
            )
        )
        return failures
    for column, values in (("offset", offset), ("scale", scale)):
        bad = [
            name
            for name, value in zip(features, values, strict=True)
            if not isinstance(value, (int, float))
            or not math.isfinite(value)
            or (column == "scale" and value == 0)
        ]
        if bad:
            check = "finite and not 0" if column == "scale" else "finite"
            failures.append(Failure(table, column, check, bad[:5], [], len(bad)))
    return failures


def inspect(cfg: DictConfig) -> Validation:
    """Every failure and warning of the processed data, and the md5 of each file checked.

    Each file is read once: its bytes are hashed and parsed from memory, so the md5 in the
    record is that of exactly what was checked.
    """
    data = cfg.data
    if is_images(data):
        return inspect_images(cfg)
    if is_text(data):
        from .text_checks import inspect_text

        return inspect_text(cfg)
    if large.processed_is_large(data, cfg.paths.processed_dir):  # larger than memory: in chunks
        return Validation(*large.inspect(cfg, stats_failures))
    _, processed_schema, features = schemas_for(data.name)
    processed_dir = Path(cfg.paths.processed_dir)
    columns = ["id", *features, data.target]
    result, contents, splits = read_processed_files(
        processed_dir,
        PROCESSED_FILES,
        lambda frame, name: schema_failures(processed_schema, frame, name, columns),
    )
    if "stats.json" in contents:
        result.failures += stats_failures(contents["stats.json"], features)
    else:
        result.failures.append(
            Failure("stats.json", "<file>", "exists", [str(processed_dir / "stats.json")])
        )
    if any(
        f.check in {"exists", "readable parquet"} and f.table.endswith(".parquet")
        for f in result.failures
    ):
        return result
    result.failures += overlapping_ids(splits)
    present = [c for c in features if all(c in frame.columns for frame in splits.values())]
    max_share = float(data.get("max_duplicate_share", DEFAULT_MAX_DUPLICATE_SHARE))
    duplicated, result.warnings = duplicated_content(splits, present, max_share)
    result.failures += duplicated
    if not result.failures:  # drift statistics are meaningless on data that breaks its schema
        drift = as_dict(data.drift, resolve=False)
        for name in ("val", "test"):
            result.failures += drift_failures(
                splits["train"],
                splits[name],
                name,
                features,
                data.target,
                has_class_labels(data),
                drift,
            )
    return result


def inspect_images(cfg: DictConfig) -> Validation:
    """An image dataset: its manifests (schema, labels, ids), ``images.json``, and every file
    the manifests list (decodable, channels, size, value range; the same content in two
    splits), then label drift between the splits."""
    from .image_checks import all_paths, content_frames, file_failures, files_digest
    from .images import IMAGES_FILE, read_images_record

    data = cfg.data
    processed_dir = Path(cfg.paths.processed_dir)
    result, _, splits = read_processed_files(
        processed_dir,
        [IMAGES_FILE],
        lambda frame, name: [
            *schema_failures(ImageManifest, frame, name, MANIFEST_COLUMNS),
            *label_range_failures(frame, name, int(data.num_classes)),
        ],
    )
    try:
        root, class_names = read_images_record(processed_dir)
    except DataValidationError as error:
        result.failures.append(Failure(IMAGES_FILE, "<file>", "readable", [str(error)[:120]]))
        return result
    if len(class_names) != int(data.num_classes):
        result.failures.append(
            Failure(IMAGES_FILE, "class_names", "one per class (data.num_classes)",
                    class_names[:5], [], len(class_names))
        )  # fmt: skip
    if result.failures:  # files of manifests that break their schema are not worth opening
        return result
    result.failures += overlapping_ids(splits)
    failures, file_md5s = file_failures(
        root, splits, list(data.image_shape), bool(data.get("resize", False)), pixel_range(data)
    )
    result.failures += failures
    max_share = float(data.get("max_duplicate_share", DEFAULT_MAX_DUPLICATE_SHARE))
    duplicated, result.warnings = duplicated_content(
        content_frames(splits, file_md5s), ["file_md5"], max_share
    )
    result.failures += duplicated
    # What the record keeps of the files themselves (image_checks.files_digest says why).
    result.images = files_digest(root, all_paths(splits))
    if not result.failures:
        drift = as_dict(data.drift, resolve=False)
        for name in ("val", "test"):
            result.failures += drift_failures(
                splits["train"], splits[name], name, [], "label", True, drift
            )
    return result


def validate(cfg: DictConfig) -> list[Failure]:
    """Every failure of the processed data, or an empty list."""
    return inspect(cfg).failures


def _summary(failure: Failure) -> str:
    return f"{failure.check} ({failure.table}, {failure.column})"


def check_and_record(cfg: DictConfig) -> Validation:
    """Validate, then write the report (reports/validation.json) and the record beside the data."""
    result = inspect(cfg)
    report = Path(cfg.paths.reports_dir) / "validation.json"
    md5 = digest(result.files)
    checked = {"dataset": cfg.data.name, "splits": list(SPLITS), "md5": md5, "files": result.files}
    write_report(report, result.failures, checked, result.warnings)
    write_data_card(cfg, result.failures, result.warnings, md5)  # reports/data_card.md
    schema: type[pa.DataFrameModel]
    if is_images(cfg.data):
        schema, columns = ImageManifest, MANIFEST_COLUMNS
    elif is_text(cfg.data):
        schema, columns = TextSplit, TEXT_COLUMNS
    else:
        _, schema, features = schemas_for(cfg.data.name)
        columns = ["id", *features, cfg.data.target]
    record = {
        "passed": not result.failures,
        "md5": md5,
        "files": result.files,
        # The schema the splits were checked under: loading a split it vouches for skips the check.
        "schema": schema_digest(schema, columns),
        "settings": checked_settings(cfg),
        **({"images": result.images} if result.images is not None else {}),
        "failed_checks": [_summary(f) for f in result.failures],
        "report": str(report),
    }
    path = record_path(cfg.paths.processed_dir)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return result


@entry_point("validate", config_name="train", data_says="")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "validate")  # a bad share or an unwritable reports folder: exit 2
    result = check_and_record(cfg)
    report = Path(cfg.paths.reports_dir) / "validation.json"
    if result.warnings:
        print(f"validate: warning:\n{format_failures(result.warnings)}")
    if result.failures:  # exit 5, bad data, as for every command (errors.py lists the codes)
        raise DataValidationError(
            f"validation failed: {len(result.failures)} check(s) broke for {cfg.data.name!r} in "
            f"{cfg.paths.processed_dir}/ (report: {report}). Training stops here; fix the data "
            f"or its source and run prepare again.\n{format_failures(result.failures)}"
        )
    print(f"validation passed: {cfg.data.name} ({', '.join(SPLITS)}); report: {report}")


if __name__ == "__main__":
    main()
