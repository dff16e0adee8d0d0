"""pandera schemas: what raw and processed data must look like before anything trains on it.

Raw schemas describe the data as it comes from its source (``sources.py``); processed schemas
describe what ``prepare`` writes and the models read. ``validate`` checks every split against
its processed schema, all failures at once. Bringing your own table? Write its two schemas here
and register them in ``SCHEMAS``. Image datasets read from files need none: every one is checked
against ``ImageManifest`` (its files by ``validate``); nor do text datasets: every one is checked
against ``TextSplit`` and the config's bounds beside it (``text_failures``).
"""

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from ..errors import ConfigError

BREAST_CANCER_FEATURES = [
    f"{stat}_{measure}" if stat != "error" else f"{measure}_error"
    for stat in ("mean", "error", "worst")
    for measure in (
        "radius", "texture", "perimeter", "area", "smoothness", "compactness",
        "concavity", "concave_points", "symmetry", "fractal_dimension",
    )
]  # fmt: skip
DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]

SPLITS = ("train", "val", "test")


def has_class_labels(data) -> bool:
    """Whether the dataset's target column holds class labels (integers) rather than values.

    Its processed schema says so, not the kind of task (``tasks/`` decides how to learn from the
    target; data only needs to know what the column holds: to stratify the splits, to store it
    as integers, to compare label frequencies between splits).
    """
    if is_images(data) or is_text(data):
        return True  # an image manifest's or a text table's label is a class index
    processed = schemas_for(data.name)[1].to_schema()
    return pd.api.types.is_integer_dtype(str(processed.columns[data.target].dtype))


def pixel_range(data) -> tuple[float, float]:
    """``data.pixel_range``: the values a raw pixel can take, e.g. [0, 16] or [0, 255]; prepare
    scales pixels from it, and predict refuses input beyond it."""
    value = data.get("pixel_range")
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low, high = 0.0, 0.0
    if not low < high:
        raise ConfigError(
            f"data.pixel_range must be [lowest, highest] raw pixel value, e.g. [0, 255] for "
            f"8-bit images, got {value!r}: set it in the data config."
        )
    return low, high


# Standardised features beyond this many standard deviations are data errors, not outliers.
MAX_ABS_ZSCORE = 50.0


def _has_exactly(df: pd.DataFrame, features: list[str]) -> bool:
    return [c for c in df.columns if c not in ("id", "label", "target")] == features


class _Table(pa.DataFrameModel):
    """Shared by every table: unique, non-negative ids; no unexpected columns; not empty."""

    id: Series[np.int64] = pa.Field(ge=0, unique=True)

    class Config:
        strict = True  # an unexpected column is an error
        coerce = False  # a wrong dtype is an error, not something to paper over

    @pa.dataframe_check(error="the table has no rows")
    def not_empty(cls, df: pd.DataFrame) -> bool:
        return len(df) > 0


# --- images read from files ---------------------------------------------------------------------


class ImageManifest(_Table):
    """Any image dataset's manifest: one row per file, whatever the dataset (no per-dataset schema
    to write: ``data.image_shape``, ``data.pixel_range`` and ``data.num_classes`` say the rest).

    ``path`` is relative to the images' root (``data/processed/images.json``); ``label`` is a
    class index, below ``data.num_classes`` (checked beside the schema, since it is the config's:
    ``label_range_failures``). The files themselves are checked by ``validate``.
    """

    path: Series[str] = pa.Field(str_length={"min_value": 1})
    label: Series[np.int64] = pa.Field(ge=0)


#: The columns of an image manifest, in order.
MANIFEST_COLUMNS = ["id", "path", "label"]


def is_images(data) -> bool:
    """Whether ``data`` is an image dataset read from files (``data.image_shape`` is set)."""
    return bool(data.get("image_shape"))


def label_range_failures(frame: pd.DataFrame, table: str, num_classes: int) -> list:
    """Labels of an image manifest at or above ``data.num_classes``: one Failure, or none."""
    from .checks import range_failures

    if "label" not in frame.columns or not pd.api.types.is_integer_dtype(frame["label"]):
        return []  # the schema's dtype row says it
    return range_failures(frame, table, ["label"], (0, num_classes - 1), "data.num_classes")


# --- texts -------------------------------------------------------------------------------------


# Characters a mis-decoded file leaves: U+FFFD (what a decoder puts for bytes it cannot read) and
# control characters other than \n \t \r (C0, DEL, and the C1 range that cp1252 text read as
# latin-1 shows). Real text has none of them.
BAD_CHARACTERS = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]"


class TextSplit(_Table):
    """Any text dataset's processed split: one row per text, whatever the dataset (no
    per-dataset schema to write: ``data.tokenizer``, ``data.max_length`` and
    ``data.num_classes`` say the rest). ``text`` is not empty or blank and holds no character a
    mis-decoded file leaves (``BAD_CHARACTERS``); ``label`` is a class index. What the config
    bounds is checked beside the schema: the label below ``data.num_classes``
    (``label_range_failures``), the length within ``data.text_length`` (``text_failures``)."""

    text: Series[str] = pa.Field(str_length={"min_value": 1})
    label: Series[np.int64] = pa.Field(ge=0)

    @pa.check("text", name="not_blank (a text of spaces only)")
    def not_blank(cls, text: Series[str]) -> Series[bool]:
        return text.str.contains(r"\S")

    @pa.check("text", name="encoding (no U+FFFD or control characters: a mis-decoded file)")
    def encoding(cls, text: Series[str]) -> Series[bool]:
        return ~text.str.contains(BAD_CHARACTERS)


#: The columns of a processed text split, in order.
TEXT_COLUMNS = ["id", "text", "label"]


def is_text(data) -> bool:
    """Whether ``data`` is a text dataset (``data.tokenizer`` is set)."""
    return bool(data.get("tokenizer"))


def text_length(data) -> tuple[int, int]:
    """``data.text_length``: the shortest and longest text in characters validate accepts."""
    value = data.get("text_length")
    try:
        low, high = (int(v) for v in value)
    except (TypeError, ValueError):
        low, high = 0, -1
    if not 0 <= low <= high:
        raise ConfigError(
            f"data.text_length must be [shortest, longest] text in characters, e.g. [1, 20000], "
            f"got {value!r}: set it in the data config."
        )
    return low, high


def text_failures(frame: pd.DataFrame, table: str, data) -> list:
    """What the config bounds in a text split: lengths within ``data.text_length`` and labels
    below ``data.num_classes`` (the schema checks the rest)."""
    from .checks import range_failures

    failures = label_range_failures(frame, table, int(data.num_classes))
    if "text" in frame.columns:  # the texts that are strings (the schema names the others)
        texts = frame["text"][frame["text"].map(lambda t: isinstance(t, str))]
        lengths = texts.astype(object).str.len().to_frame("text")
        low, high = text_length(data)
        for failure in range_failures(lengths, table, ["text"], (low, high), "data.text_length"):
            failure.check = f"length in [{low}, {high}] characters (data.text_length)"
            failure.failing_values = [f"{int(v)} characters" for v in failure.failing_values]
            failures.append(failure)
    return failures


# --- breast cancer ------------------------------------------------------------------------------

_BREAST_CANCER_COLUMNS = r"^(mean_|worst_)\w+$|^\w+_error$"


class BreastCancerRaw(_Table):
    feature: Series[np.float64] = pa.Field(alias=_BREAST_CANCER_COLUMNS, regex=True, ge=0.0, le=1e4)
    label: Series[np.int64] = pa.Field(isin=[0, 1])

    @pa.dataframe_check(error="the table must hold exactly the 30 breast-cancer features, in order")
    def features(cls, df: pd.DataFrame) -> bool:
        return _has_exactly(df, BREAST_CANCER_FEATURES)


class BreastCancerProcessed(_Table):
    feature: Series[np.float32] = pa.Field(
        alias=_BREAST_CANCER_COLUMNS, regex=True, ge=-MAX_ABS_ZSCORE, le=MAX_ABS_ZSCORE
    )
    label: Series[np.int64] = pa.Field(isin=[0, 1])

    @pa.dataframe_check(error="the table must hold exactly the 30 breast-cancer features, in order")
    def features(cls, df: pd.DataFrame) -> bool:
        return _has_exactly(df, BREAST_CANCER_FEATURES)


# --- diabetes -----------------------------------------------------------------------------------


class DiabetesRaw(_Table):
    age: Series[np.float64] = pa.Field(ge=0, le=120)
    sex: Series[np.float64] = pa.Field(isin=[1.0, 2.0])
    bmi: Series[np.float64] = pa.Field(ge=10, le=80)
    bp: Series[np.float64] = pa.Field(ge=30, le=250)  # mean arterial blood pressure
    serum: Series[np.float64] = pa.Field(alias=r"^s[1-6]$", regex=True, ge=0, le=1000)
    target: Series[np.float64] = pa.Field(ge=0, le=1000)

    @pa.dataframe_check(error="the table must hold exactly the 10 diabetes features, in order")
    def features(cls, df: pd.DataFrame) -> bool:
        return _has_exactly(df, DIABETES_FEATURES)


class DiabetesProcessed(_Table):
    feature: Series[np.float32] = pa.Field(
        alias=r"^(age|sex|bmi|bp|s[1-6])$", regex=True, ge=-MAX_ABS_ZSCORE, le=MAX_ABS_ZSCORE
    )
    target: Series[np.float32] = pa.Field(ge=0, le=1000)

    @pa.dataframe_check(error="the table must hold exactly the 10 diabetes features, in order")
    def features(cls, df: pd.DataFrame) -> bool:
        return _has_exactly(df, DIABETES_FEATURES)


# dataset name -> (raw schema, processed schema, feature columns)
SCHEMAS: dict[str, tuple[type[pa.DataFrameModel], type[pa.DataFrameModel], list[str]]] = {
    "breast_cancer": (BreastCancerRaw, BreastCancerProcessed, BREAST_CANCER_FEATURES),
    "diabetes": (DiabetesRaw, DiabetesProcessed, DIABETES_FEATURES),
}


def schemas_for(name: str) -> tuple[type[pa.DataFrameModel], type[pa.DataFrameModel], list[str]]:
    if name not in SCHEMAS:
        raise ValueError(
            f"data.name={name!r} has no schema; known datasets: {sorted(SCHEMAS)}. "
            "Add its raw and processed schemas to data/schemas.py (image datasets read from files "
            "need none: give the data config an image_shape; nor do texts: give it a tokenizer)."
        )
    return SCHEMAS[name]
