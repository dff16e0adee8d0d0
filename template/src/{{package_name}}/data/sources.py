"""Where the data comes from. **Plug your own source in here.**

``load_source`` returns one DataFrame: an ``id`` column, the feature columns, and the target
column. The bundled datasets ship inside scikit-learn, so the project trains offline. To use your
own data, either point ``data.source`` at a CSV or Parquet file with the same columns, or add a
loader to ``BUNDLED`` (a database query, an API) and a schema for it in ``schemas.py``. Image
datasets are files, not tables: ``image_sources.py`` reads them.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataValidationError


def _snake_case(name: str) -> str:
    return "_".join(name.lower().replace("-", " ").split())


def load_breast_cancer() -> pd.DataFrame:
    """30 measurements of cell nuclei; label 0 = malignant, 1 = benign."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns=_snake_case)
    return frame.rename(columns={"target": "label"}).astype({"label": np.int64})


def load_diabetes() -> pd.DataFrame:
    """Ten baseline variables of 442 patients and their disease progression a year later."""
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame.astype(np.float64)


BUNDLED: dict[str, Callable[[], pd.DataFrame]] = {
    "breast_cancer": load_breast_cancer,
    "diabetes": load_diabetes,
}


def load_source(source: str, name: str, read_options: dict | None = None) -> pd.DataFrame:
    """The raw table for dataset ``name``: bundled, or read from the file ``source``.

    ``read_options`` (``data.read_options``) are keyword arguments of ``pandas.read_csv``: a
    file's separator, encoding or decimal mark.
    """
    if source == "bundled":
        if name not in BUNDLED:
            raise ValueError(
                f"data.name={name!r} has no bundled loader; bundled datasets: {sorted(BUNDLED)}. "
                "Set data.source to a CSV or Parquet file, or add a loader in data/sources.py."
            )
        frame = BUNDLED[name]()
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"data.source={source!r} is not a file")
        if path.suffix == ".parquet":
            frame = read_parquet(path)
        elif path.suffix == ".csv":
            frame = read_csv(path, read_options or {})
        else:
            raise ValueError(f"data.source={source!r}: expected a .csv or .parquet file")
    if "id" not in frame.columns:
        frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    return frame


class SourceError(DataValidationError, ValueError):
    """A source file that cannot be read as a table; the message names the file and the fix."""


# Separators people use instead of commas, as YAML writes them.
_OTHER_SEPARATORS = {";": "';'", "\t": '"\\t"', "|": "'|'"}


def read_csv(path: Path, read_options: dict) -> pd.DataFrame:
    """A CSV file as a DataFrame, or a SourceError that says what is wrong with the file."""
    options = dict(read_options)
    try:
        frame = pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise SourceError(
            f"{path} is empty: a CSV source needs a header line of column names, then one line "
            "per row."
        ) from None
    except UnicodeDecodeError as error:
        raise SourceError(
            f"{path} is not {options.get('encoding', 'UTF-8')} text ({error.reason} at byte "
            f"{error.start}): save it as UTF-8, or name its encoding in the data config "
            "(read_options: {encoding: latin-1})."
        ) from None
    except (pd.errors.ParserError, ValueError, TypeError) as error:
        # A file of another separator whose texts hold commas fails to parse: say why.
        header = _header(path, options)
        if header is not None and "," not in header and "sep" not in options:
            _refuse_other_separator(path, header)
        reason = " ".join(str(error).split())
        raise SourceError(f"{path} cannot be read as a CSV file: {reason}") from None
    if len(frame.columns) == 1 and "sep" not in options:
        _refuse_other_separator(path, str(frame.columns[0]))
    return frame


def _header(path: Path, options: dict) -> str | None:
    """The first line of a CSV file, or None when it cannot be read as text."""
    try:
        with open(path, encoding=options.get("encoding", "utf-8")) as file:
            return file.readline()
    except (OSError, UnicodeDecodeError, LookupError):
        return None


def _refuse_other_separator(path: Path, header: str) -> None:
    """A SourceError when the header line holds one of ``_OTHER_SEPARATORS``."""
    for separator, written in _OTHER_SEPARATORS.items():
        if separator in header:
            setting = "read_options: {sep: " + written + "}"
            raise SourceError(
                f"{path} has a single column ({header.strip()[:40]!r}...): it looks "
                f"{written}-separated, not comma-separated. Name its separator in the data "
                f"config ({setting})."
            )


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame, or a SourceError naming the file."""
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        reason = " ".join(str(error).split())
        raise SourceError(f"{path} cannot be read as a Parquet file: {reason}") from None
