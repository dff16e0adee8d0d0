"""The model card: ``model_card.md``, written by ``evaluate`` beside ``evaluation.md``.

One page for whoever decides whether to use the model: what it is (architecture, parameters,
the checkpoint, its training run and data version), what it is for and not for
(``evaluation.card`` in configs/evaluation/: intended use, out of scope, known limitations; an
unanswered question is listed as such), how well it does on the test split (the headline
metrics, against the baselines), and the limitations the evaluation found by itself: the slices
it is flagged on, the behavioural tests it fails more often than ``report.FAILING_RATE``, a
baseline it does not beat, its calibration error. ``evaluation.md`` has every number; the card
picks the ones a reader must not miss, and logs with the run as the report does.
"""

import datetime
from pathlib import Path
from typing import Any

from .report import FAILING_RATE, fmt
from .results import Results

CARD_FILE = "model_card.md"
QUESTIONS = {
    "intended_use": "Intended use",
    "out_of_scope": "Out of scope",
    "limitations": "Known limitations",
}


def write_model_card(
    results: Results,
    folder: str | Path,
    model: dict[str, Any],
    answers: dict[str, Any] | None,
) -> Path:
    """Write ``model_card.md`` to ``folder``; returns its path.

    ``model``: what the checkpoint says about itself (``name``, ``parameters``, ``checkpoint``,
    ``run_id``, ``data``, ``steps``); ``answers``: ``evaluation.card``.
    """
    answers = {k: " ".join(str(v).split()) for k, v in (answers or {}).items() if v}
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    lines = [
        f"# Model card: {model.get('name', 'model')} on {model.get('data', 'its data')}",
        "",
        f"Written by `evaluate` on {today} for `{model.get('checkpoint')}` (training run "
        f"`{model.get('run_id') or 'not tracked'}`, data md5 `{model.get('data_md5')}`).",
        "",
        "## The model",
        "",
        f"- Architecture: `{model.get('target')}`, {model.get('parameters', 0):,} parameters.",
        f"- Trained for {model.get('steps', 0)} optimizer steps.",
        "",
        "## Use",
        "",
        *(
            f"- **{title}**: {answers.get(key) or '**not answered**'}"
            for key, title in QUESTIONS.items()
        ),
    ]
    unanswered = [title for key, title in QUESTIONS.items() if not answers.get(key)]
    if unanswered:
        lines += ["", f"Not answered yet (configs/evaluation/, `card:`): {', '.join(unanswered)}."]
    lines += ["", *_performance(results), "", *_found(results)]
    decision = getattr(results, "registry", None)  # evaluate's gate (evaluation/gate.py)
    if decision is not None:
        verdict = "passed" if decision.passed else "did not pass"
        lines += [
            "",
            "## Model registry",
            "",
            f"The gate {verdict}: {'; '.join(decision.reasons)}.",
        ]
        if decision.action:
            lines.append(f"Registry: {decision.action.rstrip('.')}.")
    path = Path(folder) / CARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _performance(results: Results) -> list[str]:
    """The headline test metrics, and each baseline or compared model beside them."""
    m = results.metrics
    # The headline metrics: every test metric but the micro and weighted averages of the per-class
    # ones (evaluation.md has them all).
    names = sorted(
        k
        for k in m
        if k.startswith("test/") and k.count("/") == 1 and not k.endswith(("_micro", "_weighted"))
    )
    lines = ["## Performance on the test split", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {k.split('/', 1)[1]} | {fmt(m[k])} |" for k in names]
    if results.comparisons:
        lines += [
            "",
            f"Against other models on the same rows ({results.main_metric}; the difference is "
            "this model's minus theirs, with its 95% interval):",
            "",
        ]
        for c in results.comparisons:
            theirs = c.metrics.get(results.main_metric)
            verdict = "significant" if c.significant else "not significant"
            lines.append(
                f"- {c.name} ({c.kind}): {fmt(theirs) if theirs is not None else '-'}; "
                f"difference {fmt(c.mean_difference)} [{fmt(c.ci_low)}, {fmt(c.ci_high)}], "
                f"p={c.p_value:.2g} ({verdict})"
            )
    return lines


def _found(results: Results) -> list[str]:
    """What the evaluation found that limits the model, in sentences."""
    found = []
    if results.slices is not None:
        for row in (r for r in results.slices.slices if r.flagged):
            found.append(
                f"Weaker on the slice `{row.slice}` ({row.rows} rows): {results.slices.metric} "
                f"{fmt(row.metric)}, {fmt(row.gap)} against the whole split."
            )
    tests = [*results.behaviour.invariances, *results.behaviour.directional]
    for test in tests:
        if test.failure_rate > FAILING_RATE:
            found.append(
                f"Fails the behavioural test `{test.name}` on {test.failure_rate:.0%} of rows "
                f"({test.failures} of {test.rows})."
            )
    for c in results.comparisons:
        if c.kind == "baseline" and not (c.significant and c.mean_difference > 0):
            found.append(f"Not significantly better than the baseline `{c.name}`.")
    ece = results.metrics.get("test/ece")
    if ece is not None and ece > 0.05:
        found.append(f"Over- or under-confident: expected calibration error {fmt(ece)} on test.")
    lines = ["## What the evaluation found", ""]
    if not found:
        return [*lines, "No flagged slice, no failing behavioural test, every baseline beaten."]
    return lines + [f"- {sentence}" for sentence in found]
