"""The checklist's data routine: ``python -m <package>.routine`` (``make routine``), on a schedule.

Runs the whole pipeline (``make repro``: prepare, validate, train, evaluate, export; with DVC the
stages whose inputs changed), then writes what happened to ``reports/routine.md`` and
``routine.json``, which the scheduled CI job shows and keeps. The pipeline already keeps the last
good model: data that fails validation stops it before training, so ``outputs/pipeline/`` (the
checkpoints and the served ``model.pt2``) stays as it was; the report says which model is current
and whether this run replaced it.

``--pull`` first restores the last good data and model from the DVC remote, and ``--push`` stores
them there after a run that passed; give both where CI can reach the remote (a cloud bucket,
with credentials as CI secrets), none with the default local remote.

Exit codes: 0 the routine passed; 1 a step failed (the report says which, with its output's last
lines); 5 the new data failed validation (the last good model was kept).
"""

import argparse
import datetime
import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data.version import data_version, file_md5

MODEL = Path("outputs/pipeline/model.pt2")
RECORD = Path("data/processed.validation.json")
REPORTS = Path("reports")
#: How much of a failed step's output the report keeps.
TAIL_LINES = 30
#: The report's word for the validation record's ``passed`` (a bool; anything else: not run).
VALIDATION_WORDS: dict[Any, str] = {True: "passed", False: "FAILED"}


@dataclass
class Step:
    name: str
    command: list[str]
    status: str = "not run"  # passed | failed | not run
    seconds: float = 0.0
    tail: str = ""


@dataclass
class Outcome:
    started: str
    steps: list[Step]
    model_before: str | None
    model_after: str | None
    data: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def validation_failed(self) -> bool:
        return self.validation.get("passed") is False

    @property
    def passed(self) -> bool:
        return all(step.status == "passed" for step in self.steps)

    @property
    def exit_code(self) -> int:
        if self.passed:
            return 0
        return 5 if self.validation_failed else 1


def steps(pull: bool, push: bool) -> list[Step]:
    """The routine's commands, in order; a failed one stops the rest."""
    planned = [Step("pull", ["dvc", "pull"])] if pull else []
    planned.append(Step("pipeline", ["make", "repro"]))
    if push:
        planned.append(Step("push", ["dvc", "push"]))
    return planned


def run(planned: list[Step], root: Path = Path()) -> Outcome:
    """Run ``planned`` in ``root`` until one fails; what changed, read from the files."""
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    before = _md5(root / MODEL)
    for step in planned:
        began = time.monotonic()
        proc = subprocess.run(step.command, cwd=root, capture_output=True, text=True)
        step.seconds = round(time.monotonic() - began, 1)
        step.status = "passed" if proc.returncode == 0 else "failed"
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip().splitlines()
            step.tail = "\n".join(output[-TAIL_LINES:])
            break
    outcome = Outcome(started, planned, before, _md5(root / MODEL))
    outcome.validation = _json(root / RECORD)
    outcome.metrics = _json(root / REPORTS / "metrics.json")
    processed = root / "data" / "processed"
    if processed.is_dir():
        outcome.data = data_version(processed, root / "dvc.lock")
    return outcome


def _md5(path: Path) -> str | None:
    return file_md5(path) if path.is_file() else None


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def verdict(outcome: Outcome) -> str:
    """One sentence: what the routine did to the served model."""
    if outcome.passed:
        if outcome.model_after != outcome.model_before:
            return "passed: the model was retrained on the new data and exported."
        return "passed: nothing changed since the last run (the model is the same)."
    kept = (
        f"the last good model is kept (outputs/pipeline/model.pt2, md5 {outcome.model_after})"
        if outcome.model_after
        else "there is no model yet"
    )
    if outcome.validation_failed:
        checks = ", ".join(outcome.validation.get("failed_checks", [])) or "see the report"
        return f"FAILED: the new data failed validation ({checks}); {kept}."
    failed = next(step.name for step in outcome.steps if step.status == "failed")
    return f"FAILED at {failed}; {kept}."


def write_report(outcome: Outcome, folder: Path) -> Path:
    """``routine.md`` (for people and the CI job's summary) and ``routine.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {**asdict(outcome), "verdict": verdict(outcome), "exit_code": outcome.exit_code}
    (folder / "routine.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Data routine",
        "",
        f"Started {outcome.started}. **{verdict(outcome)}**",
        "",
        "| step | status | seconds |",
        "| --- | --- | --- |",
        *(f"| {s.name} | {s.status} | {s.seconds} |" for s in outcome.steps),
        "",
        f"- Data: md5 `{outcome.data.get('md5')}`; validation "
        + VALIDATION_WORDS.get(outcome.validation.get("passed"), "not run"),
        f"- Model: `{MODEL}` md5 `{outcome.model_after}` (before: `{outcome.model_before}`)",
    ]
    headline = {
        k: v for k, v in outcome.metrics.items() if k.startswith("test/") and "/" not in k[5:]
    }
    if headline:
        scores = ", ".join(f"{k}={v:.4g}" for k, v in headline.items())
        lines.append(f"- Test metrics of that model: {scores}")
    for step in outcome.steps:
        if step.tail:
            lines += ["", f"## Output of {step.name} (last lines)", "", "```", step.tail, "```"]
    path = folder / "routine.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.routine",
        description="Run the pipeline on the current data and report; keeps the last good model.",
    )
    parser.add_argument("--pull", action="store_true", help="dvc pull first (a reachable remote)")
    parser.add_argument("--push", action="store_true", help="dvc push after a passing run")
    parser.add_argument("--reports", type=Path, default=REPORTS, help="where routine.md goes")
    args = parser.parse_args(argv)
    outcome = run(steps(args.pull, args.push))
    path = write_report(outcome, args.reports)
    print(f"routine {verdict(outcome)} Report: {path}")
    raise SystemExit(outcome.exit_code)


if __name__ == "__main__":
    main()
