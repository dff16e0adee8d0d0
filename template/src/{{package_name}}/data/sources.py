"""Where the data comes from. **Plug your own source in here.**

``load_source`` returns one DataFrame: an ``id`` column, the feature columns, and the target
column. The bundled datasets ship inside scikit-learn, so the project trains offline. To use your
own data, either point ``data.source`` at a CSV or Parquet file with the same columns, or add a
loader to ``BUNDLED`` (a database query, an API, a folder of images flattened to pixel columns)
and a schema for it in ``schemas.py``.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd


def _snake_case(name: str) -> str:
    return "_".join(name.lower().replace("-", " ").split())


def load_digits() -> pd.DataFrame:
    """8x8 grey-level images of handwritten digits, one row each (pixel values 0 to 16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    frame = pd.DataFrame(
        bunch.data.astype(np.int64), columns=[f"pixel_{i}" for i in range(bunch.data.shape[1])]
    )
    frame["label"] = bunch.target.astype(np.int64)
    return frame


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
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "diabetes": load_diabetes,
}


def load_source(source: str, name: str) -> pd.DataFrame:
    """The raw table for dataset ``name``: bundled, or read from the file ``source``."""
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
            frame = pd.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise ValueError(f"data.source={source!r}: expected a .csv or .parquet file")
    if "id" not in frame.columns:
        frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    return frame
