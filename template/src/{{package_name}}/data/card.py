"""The data card: ``reports/data_card.md``, written by ``validate`` beside its report.

What a reader needs before trusting the data, in one page: the answers to the checklist's data
questions (``data.card`` in configs/data/: source, licence, collection, labelling, privacy,
feedback; an unanswered one is listed as such), the version (the md5 of the processed files, and
whether it matches dvc.lock), the size and format of each split, the columns with the rules the
schema enforces, the labels per split, and the validation verdict. ``train`` logs the card with
its run (tracking/records.py).
"""

import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from omegaconf import DictConfig

from ..config import as_dict
from .checks import Failure, format_failures
from .schemas import has_class_labels, is_images, is_text, schemas_for
from .version import data_version

CARD_FILE = "data_card.md"
SPLITS = ("train", "val", "test")
#: The card's questions, in the order they are shown (configs/data/: `card:`).
QUESTIONS = {
    "source": "Source and availability",
    "license": "Licence",
    "collection": "How it was collected",
    "labelling": "Labelling",
    "privacy": "Personal data and privacy",
    "feedback": "User feedback or system data",
}


def write_data_card(
    cfg: DictConfig, failures: list[Failure], warnings: list[Failure], md5: str
) -> Path:
    """Write ``data_card.md`` to ``paths.reports_dir``; returns its path."""
    data = cfg.data
    processed = Path(cfg.paths.processed_dir)
    # The target column only: a table larger than memory (data/large.py) is never read whole. A
    # split that cannot be read is left out here (validate's own report names it).
    files = {split: processed / f"{split}.parquet" for split in SPLITS}
    read = {split: _target_column(file, data.target) for split, file in files.items()}
    frames = {split: frame for split, frame in read.items() if frame is not None}
    version = data_version(processed, md5=md5)
    answers = _answers(data)
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    lines = [
        f"# Data card: {data.name}",
        "",
        f"Written by `validate` on {today}. Version: md5 `{version['md5']}`"
        + {True: " (matches dvc.lock)", False: " (differs from dvc.lock: run `dvc repro`)"}.get(
            version["matches_dvc_lock"], ""
        )
        + ".",
        "",
        "## About the data",
        "",
        "| question | answer |",
        "| --- | --- |",
        *(
            f"| {title} | {_cell(answers.get(key) or '**not answered**')} |"
            for key, title in QUESTIONS.items()
        ),
    ]
    unanswered = [QUESTIONS[key] for key in QUESTIONS if not answers.get(key)]
    if unanswered:
        lines += ["", f"Not answered yet (configs/data/, `card:`): {', '.join(unanswered)}."]
    lines += [
        "",
        "## Size and format",
        "",
        "| split | rows | file | MB |",
        "| --- | --- | --- | --- |",
    ]
    for split, file in files.items():
        if split in frames:
            size = file.stat().st_size / 1e6
            lines.append(
                f"| {split} | {frames[split].attrs['rows']} | `{file.name}` | {size:.3f} |"
            )
        else:
            lines.append(f"| {split} | missing or unreadable | `{file.name}` | - |")
    lines += ["", *_columns(data), "", *_labels(data, frames), "", "## Validation", ""]
    if failures:
        lines += [
            f"**Failed**: {len(failures)} check(s) broke.",
            "",
            "```",
            format_failures(failures),
            "```",
        ]
    else:
        lines.append(
            "**Passed**: schema, disjoint splits, duplicates and drift between the splits."
        )
    if warnings:
        lines += ["", "Warnings:", "", "```", format_failures(warnings), "```"]
    path = Path(cfg.paths.reports_dir) / CARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _target_column(path: Path, target: str) -> pd.DataFrame | None:
    """The split's ``target`` column (none where the split has none), its row count in
    ``attrs["rows"]``; None when the file is missing or cannot be read."""
    try:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
        frame = file.read(columns=[target] if target in names else []).to_pandas()
    except Exception:  # missing, empty, truncated, not Parquet: validate reports which
        return None
    frame.attrs["rows"] = file.metadata.num_rows
    return frame


def _answers(data: DictConfig) -> dict[str, str]:
    card = data.get("card")
    if card is None:
        return {}
    given = as_dict(card) if isinstance(card, DictConfig) else card
    return {key: " ".join(str(value).split()) for key, value in given.items() if value}


def _columns(data: DictConfig) -> list[str]:
    """The columns with their dtype and the rules the schema enforces on them."""
    lines = ["## Columns (data/schemas.py)", ""]
    if is_images(data):
        shape = "x".join(str(d) for d in data.image_shape)
        sizes = "other sizes resized" if data.get("resize", True) else "other sizes refused"
        lines.append(
            f"Image files listed by manifests (`id`, `path`, `label`): {shape} (channels x "
            f"height x width), pixel values in {list(data.pixel_range)}, {sizes}."
        )
        return lines
    if is_text(data):
        lines.append(
            f"`id`, `text` (at most {data.text_length[1]} characters, tokenized to at most "
            f"{data.max_length} tokens) and `label` (a class index)."
        )
        return lines
    schema = schemas_for(data.name)[0].to_schema()
    lines += ["| column | dtype | nulls | rules |", "| --- | --- | --- | --- |"]
    for name, column in schema.columns.items():
        rules = ", ".join(_rule(check) for check in column.checks) or "-"
        nulls = "allowed" if column.nullable else "refused"
        lines.append(f"| `{_cell(name)}` | {column.dtype} | {nulls} | {_cell(rules)} |")
    return lines


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a ``|`` (in a column pattern, an answer) would end it."""
    return str(text).replace("|", "\\|")


def _rule(check: Any) -> str:
    """A pandera check in words: its name and its statistics (``greater_than_or_equal_to 0``)."""
    values = ", ".join(f"{v}" for v in (check.statistics or {}).values())
    return f"{check.name} {values}".strip()


def _labels(data: DictConfig, frames: dict[str, pd.DataFrame]) -> list[str]:
    """The classes per split (counts and shares), or the target's distribution (regression)."""
    target = data.target
    if not frames or any(target not in frame.columns for frame in frames.values()):
        return ["## Labels", "", f"The splits have no `{target}` column."]
    if not has_class_labels(data):  # values, not classes: the schema says what it holds
        lines = [
            "## Target",
            "",
            "| split | mean | std | min | max |",
            "| --- | --- | --- | --- | --- |",
        ]
        for split, frame in frames.items():
            values = frame[target]
            lines.append(
                f"| {split} | {values.mean():.4g} | {values.std():.4g} | {values.min():.4g} | "
                f"{values.max():.4g} |"
            )
        return lines
    names = list(data.get("class_names") or [])
    classes = sorted(set().union(*(frame[target].unique() for frame in frames.values())))
    header = "| class | " + " | ".join(frames) + " |"
    lines = ["## Labels", "", header, "| --- |" + " --- |" * len(frames)]
    for label in classes:
        name = names[int(label)] if int(label) < len(names) else str(label)
        cells = []
        for frame in frames.values():
            count = int((frame[target] == label).sum())
            cells.append(f"{count} ({count / max(len(frame), 1):.0%})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
