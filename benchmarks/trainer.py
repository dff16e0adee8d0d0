"""Per-step cost of the generated trainer against a minimal raw PyTorch loop (goal: >= 0.97).

Renders the default project (digits, SmallCNN), prepares its data, and trains the same model on
the same training split with the same optimizer and batch size three ways, interleaved and
repeated, in one process:

- raw: the shortest correct loop: shuffle, index the tensors, forward, backward, step;
- trainer, steady state: the generated ``fit``'s own throughput, measured over windows of 5 steps
  between its log points (it excludes validation and checkpoints, as the raw loop has none; the
  raw loop is timed over the same windows);
- trainer, whole fit: ``fit`` from start to end, including loading and checking the data,
  per-epoch validation (one batch) and checkpoints, divided by its number of steps.

Medians over all windows of all repeats, so that a busy machine skews both columns alike.

Also times the start-up of ``python -m <package>.train debug=fast_dev_run`` (goal: under 6 s).
A measurement, not a test: run `make bench` or `python benchmarks/trainer.py`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import copier

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
LONG = 16  # epochs of the long fit in the tracking comparison
REPEATS = 5
WINDOW = 5
BATCH = 64


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copier.run_copy(str(ROOT), project, defaults=True, quiet=True, vcs_ref="HEAD")
        sys.path.insert(0, str(project / "src"))
        import torch
        from my_dl_project.config import compose
        from my_dl_project.data.datasets import load_split
        from my_dl_project.data.prepare import prepare
        from my_dl_project.tracking.base import NullLogger
        from my_dl_project.tracking.mlflow_logger import MlflowLogger
        from my_dl_project.training.trainer import build_model, fit

        root = Path(tmp) / "work"
        overrides = [f"paths.data_dir={root}/data", f"paths.reports_dir={root}/reports"]
        prepare(compose(overrides))
        cfg_overrides = [
            *overrides,
            "logger=none",
            f"trainer.max_epochs={EPOCHS}",
            "trainer.limit_val_batches=1",
            "trainer.test_after_fit=false",
            "trainer.early_stopping.enabled=false",
            f"data.batch_size={BATCH}",
            f"trainer.log_every_n_steps={WINDOW}",
        ]
        cfg = compose([*cfg_overrides, "trainer.enable_progress_bar=false"])
        train = load_split(cfg.data, cfg.paths.processed_dir, "train")
        inputs, targets = train.tensors
        steps_per_epoch = len(inputs) // BATCH

        def raw_loop() -> list[float]:
            """Seconds per step, per window of WINDOW steps (as the trainer measures itself)."""
            torch.manual_seed(0)
            model = build_model(cfg)
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
            model.train()
            windows, start, done = [], time.perf_counter(), 0
            for epoch in range(EPOCHS):
                order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(epoch))
                for step in range(steps_per_epoch):
                    rows = order[step * BATCH : (step + 1) * BATCH]
                    loss = torch.nn.functional.cross_entropy(model(inputs[rows]), targets[rows])
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    done += 1
                    if done % WINDOW == 0:
                        loss.item()  # the trainer reads the loss at its log points too
                        windows.append((time.perf_counter() - start) / WINDOW)
                        start = time.perf_counter()
            return windows

        class Throughput(NullLogger):
            """logger=none, keeping the trainer's own throughput figures."""

            def __init__(self) -> None:
                super().__init__()
                self.samples_per_sec: list[float] = []

            def log_metrics(self, metrics, step) -> None:
                if "train/samples_per_sec" in metrics and step % WINDOW == 0:
                    self.samples_per_sec.append(metrics["train/samples_per_sec"])

        class TrackedThroughput(MlflowLogger):
            """logger=mlflow (the default sqlite store), keeping the throughput figures too."""

            def __init__(self) -> None:
                uri = f"sqlite:///{root}/mlflow.db"
                super().__init__(uri, "bench", log_system_metrics=False, log_model=False)
                self.samples_per_sec: list[float] = []

            def log_metrics(self, metrics, step) -> None:
                super().log_metrics(metrics, step)
                if "train/samples_per_sec" in metrics and step % WINDOW == 0:
                    self.samples_per_sec.append(metrics["train/samples_per_sec"])

        # The tracking comparison logs at the trainer's default interval, as users run it, over
        # a short and a long fit: the difference between the two separates the per-step cost
        # of tracking from its one-off cost (opening the run, logging the config).
        tracked_cfg = compose([*cfg_overrides[:-1], "trainer.enable_progress_bar=false"])
        long_cfg = compose(
            [*cfg_overrides[:-1], "trainer.enable_progress_bar=false", f"trainer.max_epochs={LONG}"]
        )

        def trainer(make_logger=Throughput, config=cfg) -> tuple[list[float], float]:
            logger = make_logger()
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                metrics = fit(config, out, logger)
                wall = (time.perf_counter() - start) / metrics["step"]
            logger.finish()
            windows = [BATCH / rate for rate in logger.samples_per_sec]
            steps.append(metrics["step"])
            return windows, wall

        steps: list[float] = []

        raw_loop()  # warm-up: first-call allocations and kernel selection
        trainer(TrackedThroughput)  # warm-up: creates the MLflow database (a one-off)
        raw, steady, wall, untracked_wall, tracked_wall = [], [], [], [], []
        long_untracked: list[float] = []
        long_tracked: list[float] = []
        for _ in range(REPEATS):
            raw += raw_loop()
            windows, seconds = trainer()
            steady += windows
            wall.append(seconds)
            untracked_wall.append(trainer(Throughput, tracked_cfg)[1])
            tracked_wall.append(trainer(TrackedThroughput, tracked_cfg)[1])
            long_untracked.append(trainer(Throughput, long_cfg)[1])
            long_tracked.append(trainer(TrackedThroughput, long_cfg)[1])
        short_steps = EPOCHS * steps_per_epoch
        long_steps = LONG * steps_per_epoch

        startup = []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                command = [sys.executable, "-m", "my_dl_project.train", *overrides, "logger=none"]
                command += ["debug=fast_dev_run", f"paths.output_dir={out}"]
                subprocess.run(
                    command,
                    cwd=project,
                    env={"PYTHONPATH": str(project / "src"), "PATH": "/usr/bin:/bin"},
                    check=True,
                    capture_output=True,
                )
                startup.append(time.perf_counter() - start)

    raw_us, steady_us, wall_us, untracked_us, tracked_us, long_un_us, long_tr_us = (
        statistics.median(x) * 1e6
        for x in (raw, steady, wall, untracked_wall, tracked_wall, long_untracked, long_tracked)
    )
    # Extra seconds of a tracked fit = one-off + per_step * steps, for both lengths.
    extra_short = (tracked_us - untracked_us) * short_steps
    extra_long = (long_tr_us - long_un_us) * long_steps
    per_step_us = (extra_long - extra_short) / (long_steps - short_steps)
    one_off_ms = (extra_short - per_step_us * short_steps) / 1e3
    print(
        f"SmallCNN on digits, batch {BATCH}, {EPOCHS} epochs x {steps_per_epoch} steps, "
        f"{torch.get_num_threads()} threads, {REPEATS} runs each:"
    )
    print(f"  {'raw PyTorch loop':28s} {raw_us:8.0f} us/step")
    for label, value in [("trainer, steady state", steady_us), ("trainer, whole fit", wall_us)]:
        print(f"  {label:28s} {value:8.0f} us/step   {raw_us / value:.3f} of raw")
    print("    (the whole fit includes set-up, and validation and checkpoints every epoch)")
    print(
        f"  logger=mlflow against logger=none, default log_every_n_steps="
        f"{tracked_cfg.trainer.log_every_n_steps}, fits of {short_steps} and {long_steps} steps:"
    )
    print(
        f"    whole fit per step, {short_steps} steps: none {untracked_us:.0f} us, "
        f"mlflow {tracked_us:.0f} us"
    )
    print(
        f"    whole fit per step, {long_steps} steps: none {long_un_us:.0f} us, "
        f"mlflow {long_tr_us:.0f} us"
    )
    print(
        f"    per-step overhead {per_step_us:+.0f} us = {per_step_us / long_un_us:+.1%} of a step "
        f"(goal: under 2%); one-off per run {one_off_ms:.0f} ms (config, first writes)"
    )
    print(f"  start-up, debug=fast_dev_run {statistics.median(startup):8.2f} s (goal: under 6 s)")


if __name__ == "__main__":
    main()
