"""Write the evaluation: ``metrics.json`` (flat, for DVC and trackers), ``evaluation.md`` (for
people) and the PNG charts it shows, all in one folder (``paths.reports_dir``).
"""

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import distributions, importance, plots
from .suite import Split

LABELS = {"accuracy": "accuracy", "mae": "MAE"}
# A behavioural test whose failure rate exceeds this is called out in the summary.
FAILING_RATE = 0.1


def write(
    results: dict[str, Any],
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
    finite = {k: v for k, v in sorted(results["metrics"].items()) if math.isfinite(v)}
    metrics_path.write_text(json.dumps(finite, indent=2) + "\n", encoding="utf-8")
    markdown = folder / "evaluation.md"
    markdown.write_text(render_markdown(results, title, charts, class_names), encoding="utf-8")
    return [metrics_path, markdown, *charts.values()]


def _charts(results, folder, test, class_names) -> dict[str, Path]:
    charts: dict[str, Path] = {}
    if results["task"] == "classification":
        names = list(class_names or range(results["num_classes"]))
        names = [str(n) for n in names]
        charts["confusion"] = plots.confusion_matrix(
            results["confusion"], folder / "confusion_matrix.png", names
        )
        charts["reliability"] = plots.reliability_diagram(
            results["reliability"], folder / "reliability.png"
        )
        found = results["confidence"]["found"]
        charts["confidence"] = plots.confidence_curve(
            results["confidence"]["curve"], folder / "confidence.png", found[0] if found else None
        )
        # Drawn for any number of classes (one curve per class beyond two), so that the files a
        # pipeline declares (dvc.yaml) are there whatever the data.
        if "threshold" in results:
            charts["roc_pr"] = plots.roc_pr(
                test.y,
                results["test_p_positive"],
                results["threshold"]["value"],
                folder / "roc_pr.png",
            )
        else:
            charts["roc_pr"] = plots.roc_pr_one_vs_rest(
                test.y, results["test_probs"], folder / "roc_pr.png", names
            )
    else:
        charts["residuals"] = plots.residuals(test.y, test.output, folder / "residuals.png")
    charts["distributions"] = distributions.chart(
        results["distributions"], folder / "prediction_distributions.png", class_names
    )
    if "importance" in results:
        charts["importance"] = importance.chart(
            results["importance"], folder / "feature_importance.png"
        )
    if results["behaviour"]["perturbations"]:
        charts["perturbations"] = plots.perturbation_curves(
            results["behaviour"]["perturbations"], folder / "perturbations.png"
        )
    if test.x.ndim == 4 and results["task"] == "classification":  # images: (n, C, H, W)
        rows = {}
        for which in ("best", "worst"):
            picked = results["examples"][which]
            images = np.stack([test.x[row["index"]].mean(axis=0) for row in picked])
            captions = [
                f"true {row['true']}, pred {row['predicted']}\n({row['confidence']:.2f})"
                for row in picked
            ]
            rows[which] = (images, captions)
        charts["examples"] = plots.image_grid(
            rows, folder / "predictions.png", "Best and worst test predictions (by loss)"
        )
    return charts


# ---- Markdown ------------------------------------------------------------------------------


def render_markdown(
    results: dict[str, Any],
    title: str,
    charts: dict[str, Path],
    class_names: Sequence[str] | None = None,
) -> str:
    classification = results["task"] == "classification"
    m = results["metrics"]
    out = [f"# {title}", ""]
    out += ["## Summary", "", *_summary(results), ""]
    out += ["## Metrics", "", "Validation and test splits; the test split is the one to quote.", ""]
    out += _metrics_table(m)
    if classification:
        out += ["", "## Class balance", ""]
        out += _balance_table(results["balance"], class_names)
        if "threshold" in results:
            out += ["", "## Decision threshold", "", *_threshold(results["threshold"])]
        out += ["", "## Calibration", "", *_calibration(m), ""]
        out += [_image(charts, "reliability", "Reliability diagram")]
        out += ["", "## Confidence", "", *_confidence(results["confidence"]), ""]
        out += [_image(charts, "confidence", "Accuracy and coverage by confidence threshold")]
        out += ["", _image(charts, "confusion", "Confusion matrix")]
        if "roc_pr" in charts:
            out += ["", _image(charts, "roc_pr", "ROC and precision-recall curves")]
    else:
        out += ["", _image(charts, "residuals", "Predicted against true values, and residuals")]
    out += ["", "## Prediction distributions", ""]
    out += _distributions(results["distributions"], charts, class_names)
    if "importance" in results:
        out += ["", "## Feature importance", "", *_importance(results["importance"], charts)]
    out += ["", "## Slices", "", *_slices(results["slices"])]
    out += ["", "## Behavioural tests", "", *_behaviour(results["behaviour"], charts)]
    out += ["", "## Best and worst predictions", "", *_examples(results["examples"], charts)]
    out += ["", "## Baselines and comparisons", "", *_comparisons(results)]
    if "seeds" in results:
        out += ["", "## Over seeds", "", *_seeds(results["seeds"])]
    return "\n".join(out).rstrip() + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell) for cell in row) + " |" for row in rows]
    return lines


def _image(charts: dict[str, Path], key: str, alt: str) -> str:
    return f"![{alt}]({charts[key].name})" if key in charts else ""


def _summary(results) -> list[str]:
    m, lines = results["metrics"], []
    main = "accuracy" if results["task"] == "classification" else "mae"
    for name, comp in results["comparisons"].items():
        p_value = comp["mcnemar"]["p_value"] if "mcnemar" in comp else comp["p_value"]
        if comp["significant"]:
            verdict = "significantly " + ("better" if comp["mean_difference"] > 0 else "worse")
        elif comp["mean_difference"] == 0 and comp["ci_low"] == comp["ci_high"]:
            verdict = "the same predictions"
        else:
            verdict = "no significant difference"
        lines.append(
            f"- Test {LABELS[main]} {_fmt(m[f'test/{main}'])} against "
            f"{_fmt(comp['metrics'][main])} for {name} ({comp['kind']}): {verdict} "
            f"(p = {_fmt(p_value)})."
        )
    if "test/ece" in m:
        ece = f"- Calibration error (ECE) {_fmt(m['test/ece'])}"
        if not results.get("temperature_usable", True):
            ece += " (temperature scaling not applied: see Calibration)"
        elif "test/ece_calibrated" in m:
            ece += (
                f", {_fmt(m['test/ece_calibrated'])} after temperature scaling "
                f"(T = {_fmt(m['temperature'])})"
            )
        lines.append(ece + ".")
    flagged = [row for row in results["slices"]["slices"] if row["flagged"]]
    if flagged:
        worst = flagged[0]
        lines.append(
            f"- Weakest slice: `{worst['slice']}` ({results['slices']['metric']} "
            f"{_fmt(worst['metric'])} on {worst['rows']} rows, whole split "
            f"{_fmt(results['slices']['overall'])})."
        )
    tests = results["behaviour"]["invariances"] + results["behaviour"]["directional"]
    failing = [t["name"] for t in tests if t["failure_rate"] > FAILING_RATE]
    if tests:
        lines.append(
            f"- Behavioural tests: {len(failing)} of {len(tests)} fail on more than "
            f"{FAILING_RATE:.0%} of rows" + (f" ({', '.join(failing)})." if failing else ".")
        )
    return lines


def _metrics_table(m: dict[str, float]) -> list[str]:
    names = sorted({k.split("/", 1)[1] for k in m if k.startswith("test/") and k.count("/") == 1})
    return _table(
        ["metric", "validation", "test"],
        [[n, m.get(f"val/{n}", ""), m[f"test/{n}"]] for n in names],
    )


def _balance_table(balance, class_names) -> list[str]:
    num = len(next(iter(balance.values()))["counts"])
    names = [str(n) for n in (class_names or range(num))]
    rows = [
        [
            split,
            *[f"{c} ({s:.0%})" for c, s in zip(b["counts"], b["shares"], strict=True)],
            b["imbalance_ratio"],
        ]
        for split, b in balance.items()
    ]
    lines = _table(["split", *names, "largest / smallest"], rows)
    if max(b["imbalance_ratio"] for b in balance.values()) > 1.5:
        lines += [
            "",
            "The classes are imbalanced: read the macro-averaged metrics, the per-class slices and "
            "AUPRC rather than accuracy alone.",
        ]
    return lines


def _threshold(t) -> list[str]:
    how = {
        "f1": "the highest F1 on the validation split",
        "cost": "the lowest cost on the validation split",
        "fixed": "configuration",
    }[t["method"]]
    lines = [f"Class 1 is predicted when P(1) >= {_fmt(t['value'])}, chosen by {how}.", ""]
    lines += _table(["test metric at the threshold", "value"], list(t["metrics"].items()))
    if "cost" in t:
        c = t["cost"]
        lines += [
            "",
            f"Mean cost per row: {_fmt(c['at_threshold'])} (at 0.5: {_fmt(c['at_0.5'])}).",
        ]
    return lines


def _calibration(m) -> list[str]:
    lines = [
        f"Expected calibration error on the test split: {_fmt(m['test/ece'])} (0 is perfect: "
        "in each confidence bin the accuracy equals the confidence)."
    ]
    if "temperature" in m and "test/ece_calibrated" not in m:
        lines.append(
            "Temperature scaling was not applied: the model gets (almost) every validation row "
            f"right, so the fit only sharpens (T = {_fmt(m['temperature'])}) and says nothing "
            "about new data; a larger validation split helps."
        )
    elif "temperature" in m:
        lines.append(
            f"Temperature scaling fitted on the validation split: T = {_fmt(m['temperature'])}; "
            f"ECE {_fmt(m['test/ece_calibrated'])}, log loss {_fmt(m['test/log_loss'])} -> "
            f"{_fmt(m['test/log_loss_calibrated'])}. T > 1: the model was overconfident; "
            "T < 1: underconfident."
        )
    return lines


def _confidence(c) -> list[str]:
    if c["found"]:
        t, cov = c["found"]
        return [
            f"Keeping only predictions with confidence >= {_fmt(t)} gives an accuracy of at least "
            f"{c['target_accuracy']:.0%} on {cov:.0%} of the test rows; the rest need a person."
        ]
    return [f"No confidence threshold reaches an accuracy of {c['target_accuracy']:.0%}."]


def _distributions(d, charts, class_names) -> list[str]:
    lines = [_image(charts, "distributions", "Prediction distributions"), ""]
    if "right" in next(iter(d.values())):
        num = len(next(iter(d.values()))["true"])
        names = [str(n) for n in (class_names or range(num))]
        header = ["class"]
        for split in d:
            header += [f"true ({split})", f"predicted ({split})"]
        rows = [
            [name, *[d[split][key][i] for split in d for key in ("true", "predicted")]]
            for i, name in enumerate(names)
        ]
        lines += [
            "How often each class is true and how often it is predicted; a class predicted far "
            "more often than it occurs draws the model's mistakes.",
            "",
            *_table(header, rows),
            "",
        ]
        lines += [
            "Mean confidence (highest probability): "
            + ", ".join(f"{split} {_fmt(d[split]['mean_confidence'])}" for split in d)
            + "."
        ]
        return lines
    rows = [
        [split, v["true_mean"], v["predicted_mean"], v["true_std"], v["predicted_std"]]
        for split, v in d.items()
    ]
    lines += [
        "Predicted values beside the true ones: a predicted spread (std) well below the true "
        "one means outputs squeezed towards the mean.",
        "",
    ]
    return lines + _table(
        ["split", "true mean", "predicted mean", "true std", "predicted std"], rows
    )


def _importance(imp, charts, top: int = 10) -> list[str]:
    lines = [
        f"The increase in test {imp['metric']} (from {_fmt(imp['baseline'])}) when one feature's "
        f"values are shuffled among the rows, mean and standard deviation over "
        f"{imp['n_repeats']} shuffles; the {top} most important of {len(imp['features'])}.",
        "",
        _image(charts, "importance", "Permutation feature importance"),
        "",
    ]
    rows = [[f["feature"], f["importance"], f["std"]] for f in imp["features"][:top]]
    return lines + _table(["feature", "importance", "std"], rows)


def _slices(s) -> list[str]:
    if not s["slices"]:
        return ["No slices are configured (`evaluation.slices.specs`)."]
    lines = [
        f"{s['metric']} per slice of the test split, worst first (whole split: "
        f"{_fmt(s['overall'])}); flagged: among the worst and worse than the whole.",
        "",
    ]
    rows = [
        [r["slice"], r["rows"], r["metric"], r["gap"], "yes" if r["flagged"] else ""]
        for r in s["slices"]
    ]
    return lines + _table(["slice", "rows", s["metric"], "gap", "flagged"], rows)


def _behaviour(b, charts) -> list[str]:
    lines = []
    if b["perturbations"]:
        metric = "accuracy" if "accuracy" in b["perturbations"][0] else "mae"
        lines += [
            "### Robustness",
            "",
            f"Test {metric} as the inputs are perturbed more. Levels are in the processed units: "
            "multiples of each feature's scale (for tables, its standard deviation on the "
            "training split).",
            "",
        ]
        rows = [
            [
                c["name"],
                c["kind"],
                ", ".join(
                    f"{lv:g}: {_fmt(v)}" for lv, v in zip(c["levels"], c[metric], strict=True)
                ),
            ]
            for c in b["perturbations"]
        ]
        lines += _table(["perturbation", "kind", f"level: {metric}"], rows)
        lines += ["", _image(charts, "perturbations", "Robustness curves"), ""]
    for kind, heading, what in (
        ("invariances", "Invariance tests", "must not change the prediction"),
        ("directional", "Directional expectations", "must move the output one way"),
    ):
        if not b[kind]:
            continue
        lines += [f"### {heading}", "", f"Each transformation {what}.", ""]
        rows = []
        for t in b[kind]:
            failing = "; ".join(
                f"{e['id']}: {_fmt(e['before'])} -> {_fmt(e['after'])}" for e in t["examples"][:3]
            )
            if failing and t.get("output"):  # what the numbers are: a value, a log-odds
                failing += f" ({t['output']})"
            rate, failures = f"{t['failure_rate']:.1%}", f"{t['failures']}/{t['rows']}"
            rows.append([t["name"], t.get("change", ""), rate, failures, failing or "none"])
        lines += _table(
            ["test", "change", "failure rate", "failures", "failing rows (id: before -> after)"],
            rows,
        )
        lines.append("")
    return lines or ["No behavioural tests are configured."]


def _examples(e, charts) -> list[str]:
    lines = []
    if "examples" in charts:
        lines += [_image(charts, "examples", "Best and worst predictions"), ""]
    classification = any("confidence" in row for row in e["best"] + e["worst"])
    keys = ["id", "true", "predicted", *(["confidence"] if classification else []), "loss"]
    header = [*keys[:-1], "loss" if classification else "absolute error"]
    for which in ("best", "worst"):
        lines += [f"{which.capitalize()}:", ""]
        lines += [*_table(header, [[row[k] for k in keys] for row in e[which]]), ""]
    return lines


def _comparisons(results) -> list[str]:
    main = "accuracy" if results["task"] == "classification" else "mae"
    score = "1 if correct, else 0" if main == "accuracy" else "minus the absolute error"
    lines = [
        "Each row compares this model with another on the same test rows. Difference: this "
        f"model's per-row score minus the other's ({score}), "
        "with its 95% bootstrap interval; p from McNemar's exact test (classifiers) or the paired "
        "t-test; effect size: Cohen's d_z.",
        "",
    ]
    rows = []
    for name, c in results["comparisons"].items():
        p = c["mcnemar"]["p_value"] if "mcnemar" in c else c["p_value"]
        rows.append(
            [
                f"{name} ({c['kind']})",
                c["metrics"][main],
                c["mean_difference"],
                f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]",
                p,
                c["effect_size"],
                "yes" if c["significant"] else "no",
            ]
        )
    header = [
        "other model",
        f"its {main}",
        "difference",
        "95% CI",
        "p",
        "effect size",
        "significant",
    ]
    return lines + _table(header, rows)


def _seeds(s) -> list[str]:
    metric = LABELS[s["metric"]]
    lines = [
        f"Test {metric} of runs over several seeds, the i-th run of each group with the same "
        "seed: paired t-test and 95% bootstrap interval of the mean difference (first group "
        "minus the other); effect size: Cohen's d_z. With few seeds, read the interval first.",
        "",
    ]
    rows = [
        [
            f"{c['first']} vs {c['other']}",
            c["runs"],
            c["first_mean"],
            c["other_mean"],
            c["mean_difference"],
            f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]",
            c["p_value"],
            c["effect_size"],
            _seed_verdict(c),
        ]
        for c in s["comparisons"]
    ]
    header = [
        "comparison",
        "runs",
        "first mean",
        "other mean",
        "difference",
        "95% CI",
        "p",
        "effect size",
        "significant",
    ]
    return lines + _table(header, rows)


def _seed_verdict(c) -> str:
    if c["mean_difference"] == 0:
        return "no (no difference)"
    ahead = c["first"] if c["better"] else c["other"]
    return f"{'yes' if c['significant'] else 'no'} ({ahead} ahead)"
