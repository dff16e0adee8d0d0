"""Drift of the service's inputs: ``python -m <package>.monitor [overrides]`` (``make monitor``).

Reads the summaries the service writes (``monitoring.log``: histograms of what it received, never
the inputs themselves; ``serving/monitoring.py``), keeps those of the last
``monitoring.window_hours`` (null: all), adds them up and compares them with the training split
(``paths.processed_dir``) with ``validate``'s drift gates and thresholds (``data.drift``): per
monitored input (table features in standard units, images' mean intensity, texts' length in
characters and tokens) a binned Kolmogorov-Smirnov test that fails when the statistic is above
``max_ks`` and p below ``alpha``; the predicted classes against the training labels by total
variation distance (``max_label_tvd``), or for regression the predicted values against the
training targets by the same KS test. See ``serving/drift.py``.

Writes ``paths.reports_dir/monitoring.md`` and ``monitoring.json`` (per input: statistic, p,
verdict; requests, rows, statuses; latency) and prints a summary. With fewer than
``monitoring.min_rows`` inputs in the window there is no verdict (exit 0; the report says so).

Exit codes: 0 no drift (or no verdict); 2 bad config; 5 a missing or unreadable log (or
training data); 7 drift (``DriftError``).
"""

from omegaconf import DictConfig

from .config import check_settings, entry_point
from .errors import DriftError


@entry_point("monitor")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "monitor")
    from .serving.drift import monitor

    report = monitor(cfg)  # an error's message and exit code: errors.reported
    reports = " and ".join(report["reports"])
    window = report["window"]
    print(
        f"monitor: {report['verdict']}: {report['rows']} inputs in {report['requests']} requests "
        f"({window['lines']} summaries of {cfg.monitoring.log}); report: {reports}"
    )
    for key, entry in report["inputs"].items():
        if entry["verdict"] == "drift":
            print(f"  {key}: {entry['check']}")
    if report["verdict"] == "no verdict":
        print(f"  fewer inputs than monitoring.min_rows={report['min_rows']}: no verdict")
    if report["failures"]:
        raise DriftError(
            "the service's recent inputs drifted from the training data: "
            + "; ".join(report["failures"])
            + f" (data.drift thresholds); report: {reports}."
        )


if __name__ == "__main__":
    main()
