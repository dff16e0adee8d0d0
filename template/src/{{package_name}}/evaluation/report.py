"""Write the evaluation: ``metrics.json`` (flat, for DVC and trackers), ``evaluation.md`` (for
people) and the PNG charts it shows, all in one folder (``paths.reports_dir``).

The Markdown comes from the Jinja template ``report.md.j2`` beside this module: the wording and
the order of the sections live there; this module draws the charts and formats numbers.
"""

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from . import distributions, importance, plots
from .results import Results
from .suite import Split

TEMPLATE = "report.md.j2"
# A behavioural test whose failure rate exceeds this is called out in the summary.
FAILING_RATE = 0.1


def write(
    results: Results,
    folder: str | Path,
    test: Split,
    title: str,
    class_names: Sequence[str] | None = None,
) -> list[Path]:
    """Write every file of the report; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    charts = _charts(results, folder, test, class_names)
    metrics_path = folder / "metrics.json"
    # NaN and infinity are not JSON: DVC and trackers get finite numbers only.
    finite = {k: v for k, v in sorted(results.metrics.items()) if math.isfinite(v)}
    metrics_path.write_text(json.dumps(finite, indent=2) + "\n", encoding="utf-8")
    markdown = folder / "evaluation.md"
    markdown.write_text(render_markdown(results, title, charts, class_names), encoding="utf-8")
    return [metrics_path, markdown, *charts.values()]


def _names(results: Results, class_names: Sequence[str] | None) -> list[str]:
    """One name per class: ``evaluation.class_names``, or the class indices."""
    count = results.classification.num_classes if results.classification else 0
    return [str(name) for name in (class_names or range(count))]


def _charts(results: Results, folder: Path, test: Split, class_names) -> dict[str, Path]:
    charts: dict[str, Path] = {}
    sections = results.classification
    if sections is not None:
        names = _names(results, class_names)
        charts["confusion"] = plots.confusion_matrix(
            sections.confusion, folder / "confusion_matrix.png", names
        )
        charts["reliability"] = plots.reliability_diagram(
            sections.reliability, folder / "reliability.png"
        )
        found = sections.confidence.found
        charts["confidence"] = plots.confidence_curve(
            sections.confidence.curve, folder / "confidence.png", found[0] if found else None
        )
        # Drawn for any number of classes (one curve per class beyond two), so that the files a
        # pipeline declares (dvc.yaml) are there whatever the data.
        if sections.threshold is not None:
            charts["roc_pr"] = plots.roc_pr(
                test.y, sections.test_probs[:, 1], sections.threshold.value, folder / "roc_pr.png"
            )
        else:
            charts["roc_pr"] = plots.roc_pr_one_vs_rest(
                test.y, sections.test_probs, folder / "roc_pr.png", names
            )
    else:
        charts["residuals"] = plots.residuals(test.y, test.output, folder / "residuals.png")
    charts["distributions"] = distributions.chart(
        results.distributions, folder / "prediction_distributions.png", class_names
    )
    if results.importance is not None:
        charts["importance"] = importance.chart(
            asdict(results.importance), folder / "feature_importance.png"
        )
    if results.behaviour.perturbations:
        charts["perturbations"] = plots.perturbation_curves(
            results.behaviour.perturbations, folder / "perturbations.png"
        )
    if test.x.ndim == 4 and sections is not None:  # images: (n, C, H, W)
        rows = {}
        for which in ("best", "worst"):
            picked = getattr(results.examples, which)
            images = np.stack([test.x[row.index].mean(axis=0) for row in picked])
            captions = [
                f"true {row.true}, pred {row.predicted}\n({row.confidence:.2f})" for row in picked
            ]
            rows[which] = (images, captions)
        charts["examples"] = plots.image_grid(
            rows, folder / "predictions.png", "Best and worst test predictions (by loss)"
        )
    return charts


# ---- Markdown ------------------------------------------------------------------------------


def render_markdown(
    results: Results,
    title: str,
    charts: dict[str, Path],
    class_names: Sequence[str] | None = None,
) -> str:
    """``evaluation.md``: the template ``report.md.j2`` filled in with ``results``."""
    m = results.metrics
    text = (
        _environment()
        .get_template(TEMPLATE)
        .render(
            r=results,
            m=m,
            title=title,
            charts={key: path.name for key, path in charts.items()},
            class_names=_names(results, class_names),
            metric_names=sorted(
                {k.split("/", 1)[1] for k in m if k.startswith("test/") and k.count("/") == 1}
            ),
            failing_rate=FAILING_RATE,
        )
    )
    # One blank line between blocks, however the template's conditionals fall.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        undefined=jinja2.StrictUndefined,  # a misspelt name fails, not prints nothing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    environment.filters.update(
        fmt=fmt, pct=lambda v, digits=0: f"{v:.{digits}%}", g=lambda v: f"{v:g}"
    )
    return environment


def fmt(value: Any) -> str:
    """A number as the report prints it: 4 significant digits, or scientific from 1e5."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)
