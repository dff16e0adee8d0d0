"""Validation throughput: rows per second of a processed-data schema on a 1M-row table.

Renders a project per task, builds a synthetic table that satisfies its processed schema
(digits: 66 columns; breast cancer: 32; diabetes: 12) and times the generated project's own
`schema_failures`, the lazy pandera validation `validate` runs on every split. A measurement,
not a test: `make bench`.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
import warnings
from pathlib import Path

import copier
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ROWS = 1_000_000
TASKS = {
    "image_classification": ("digits", "label", 0.0, 1.0),
    "tabular_classification": ("breast_cancer", "label", -3.0, 3.0),
    "tabular_regression": ("diabetes", "target", -3.0, 3.0),
}


def synthetic(features: list[str], target: str, low: float, high: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.uniform(low, high, size=(ROWS, len(features))).astype(np.float32), columns=features
    )
    frame.insert(0, "id", np.arange(ROWS, dtype=np.int64))
    if target == "label":
        frame[target] = rng.integers(0, 2, ROWS).astype(np.int64)
    else:
        frame[target] = rng.uniform(25, 346, ROWS).astype(np.float32)
    return frame


def main() -> None:
    print(f"Lazy pandera validation of a {ROWS:,}-row processed table (best of 3):")
    for task, (dataset, target, low, high) in TASKS.items():
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copier.run_copy(
                str(ROOT), tmp, data={"task": task}, defaults=True, quiet=True, vcs_ref="HEAD"
            )
            sys.path.insert(0, str(Path(tmp) / "src"))
            for name in [m for m in sys.modules if m.startswith("my_dl_project")]:
                del sys.modules[name]
            schemas = importlib.import_module("my_dl_project.data.schemas")
            checks = importlib.import_module("my_dl_project.data.checks")
            sys.path.pop(0)
            _, processed, features = schemas.schemas_for(dataset)
            frame = synthetic(features, target, low, high)
            columns = ["id", *features, target]
            seconds = []
            for _ in range(3):
                start = time.perf_counter()
                failures = checks.schema_failures(processed, frame, "train", columns)
                seconds.append(time.perf_counter() - start)
            assert failures == [], failures
            best = min(seconds)
            print(
                f"  {dataset:14s} {len(columns):3d} columns: {best:6.2f} s, "
                f"{ROWS / best:12,.0f} rows/s"
            )


if __name__ == "__main__":
    main()
