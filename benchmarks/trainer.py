"""Per-step cost of the generated trainer against a minimal raw PyTorch loop (goal: >= 0.97).

Renders the default project (digits, SmallCNN), prepares its data, and trains the same model on
the same training split with the same optimizer, learning-rate schedule, gradient clipping,
precision and batch size, interleaved and repeated, in one process:

- raw: the shortest correct loop: shuffle, index the tensors, forward, backward, clip, step,
  schedule (what a person writes by hand for this model);
- trainer, steady state: the generated ``fit``'s own throughput, measured over windows of 5 steps
  between its log points (it excludes validation and checkpoints, as the raw loop has none; the
  raw loop is timed over the same windows, each ending with a ``loss.item()`` as the trainer's);
- trainer, whole fit: ``fit`` from start to end, including loading and checking the data,
  per-epoch validation (one batch) and checkpoints, divided by its number of steps;
- Lightning, where it is installed: a LightningModule around the same model, the usual
  DataLoader(TensorDataset) and the same optimizer, schedule (per step) and clipping, no logger or
  progress bar; timed over the same windows by a callback. Its whole fit does the trainer's work:
  the same splits loaded by the same function (read, hashed, checked), one validation batch and a
  checkpoint every epoch (``ModelCheckpoint``: the best and the last); "training only" is the
  same fit without them (the data already in memory, no validation, no checkpoints).

Steady-state windows are whole windows inside one epoch, in every loop: each loop's window ends
at a log point (every 5 steps, and at the end of an epoch, as the trainer logs), and windows of
fewer steps (those that start an epoch, after its validation and checkpoint) are left out. Medians
over all windows of all repeats, so that a busy machine skews every column alike.

Then, on CPU with MLflow installed, the per-step cost of ``logger=mlflow`` against
``logger=none`` (goal: under 2%), and the start-up of ``python -m <package>.train
debug=fast_dev_run`` (goal: under 6 s).

A measurement, not a test: run `make bench` or `python benchmarks/trainer.py --help`. On a GPU:
`python benchmarks/trainer.py --device cuda --precision bf16-mixed --compile --channels-last`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from itertools import chain
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONG = 16  # epochs of the long fit in the tracking comparison
WINDOW = 5
BATCH = 64
PACKAGE = "my_dl_project"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, help="a rendered default project (else rendered)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cpu: the process's CPU time, for a busy machine (with --threads 1; no disk waits)",
    )
    parser.add_argument("--skip-lightning", action="store_true")
    parser.add_argument(
        "--lightning-training-only",
        action="store_true",
        help="also time Lightning without loading the data, validation or checkpoints",
    )
    parser.add_argument("--skip-tracking", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args()


def render(destination: Path) -> Path:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(str(ROOT), destination, defaults=True, quiet=True, vcs_ref="HEAD")
    return destination


def main() -> None:
    global clock
    args = arguments()
    if args.clock == "cpu":
        clock = time.process_time
    with tempfile.TemporaryDirectory() as tmp:
        project = args.project.resolve() if args.project else render(Path(tmp) / "project")
        sys.path.insert(0, str(project / "src"))
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        results = Bench(args, project, Path(tmp) / "work").run()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


# The clock of every figure: wall time, or with --clock cpu the process's CPU time (robust to
# other processes on a shared machine; use it with --threads 1; it leaves out waiting for the
# disk, such as the checkpoints' fsync).
clock = time.perf_counter


class Windows:
    """Per-step seconds over whole windows of WINDOW steps inside one epoch.

    A window ends at a log point, as the trainer's do: every WINDOW steps and at the end of an
    epoch, with a ``loss.item()`` (the trainer reads the loss there too). Left out: a window of
    fewer steps (the first of an epoch when the epoch is not a multiple of WINDOW; in the trainer
    it also holds the previous epoch's validation and checkpoint) and the first window of a fit
    (the trainer's includes its set-up: its windows are timed between its log calls).
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.done = 0  # steps in all
        self.steps = 0  # steps in the window in progress
        self.start = clock()

    def step(self, loss, epoch_ends: bool) -> None:
        self.done += 1
        self.steps += 1
        if self.done % WINDOW == 0 or epoch_ends:
            loss.item()
            self.end(self.done)

    def end(self, step: int) -> None:
        """A log point after ``step`` steps in all."""
        now = clock()
        if self.steps == WINDOW and step > WINDOW:
            self.seconds.append((now - self.start) / WINDOW)
        self.steps, self.start = 0, now


class Bench:
    def __init__(self, args: argparse.Namespace, project: Path, root: Path) -> None:
        import torch
        from my_dl_project.config import compose
        from my_dl_project.data.prepare import prepare
        from my_dl_project.data.validate import check_and_record

        self.args, self.project, self.root = args, project, root
        self.device = torch.device(args.device)
        self.data_overrides = [f"paths.data_dir={root}/data", f"paths.reports_dir={root}/reports"]
        prepare(compose(self.data_overrides))
        check_and_record(compose(self.data_overrides))  # the train command uses validated data only
        self.overrides = [
            *self.data_overrides,
            "logger=none",
            f"trainer.max_epochs={args.epochs}",
            "trainer.limit_val_batches=1",
            "trainer.test_after_fit=false",
            "trainer.early_stopping.enabled=false",
            "trainer.enable_progress_bar=false",
            f"data.batch_size={BATCH}",
            f"trainer.accelerator={args.device}",
            f"trainer.precision={args.precision}",
            f"trainer.compile={str(args.compile).lower()}",
            f"trainer.channels_last={str(args.channels_last).lower()}",
        ]
        self.cfg = compose([*self.overrides, f"trainer.log_every_n_steps={WINDOW}"])
        assert self.cfg.data.task != "tabular_regression", "the benchmark trains a classifier"
        self.inputs, self.targets = self.split("train").tensors
        self.steps_per_epoch = len(self.inputs) // BATCH
        self.total_steps = args.epochs * self.steps_per_epoch
        self.dtype = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}[
            args.precision
        ]

    def split(self, name: str):
        """A split as the trainer loads it: read, hashed and checked by the project's loader."""
        from my_dl_project.data.datasets import load_split

        cfg = self.cfg
        try:  # the task interface (tasks/) gives the loader its target encoding
            from my_dl_project import tasks
        except ImportError:
            return load_split(cfg.data, cfg.paths.processed_dir, name)
        return load_split(cfg.data, cfg.paths.processed_dir, name, tasks.for_data(cfg.data).targets)

    # ---- the three loops ------------------------------------------------------------------------

    def model(self):
        import torch
        from my_dl_project.tasks import build_model

        torch.manual_seed(0)
        model = build_model(self.cfg).to(self.device)
        if self.args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.args.compile:
            model.compile()
        return model

    def optimizer(self, model):
        import torch
        from my_dl_project.training.schedulers import cosine_with_warmup

        opt = self.cfg.optimizer
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay, betas=tuple(opt.betas)
        )
        sched = self.cfg.scheduler
        scheduler = cosine_with_warmup(
            optimizer, self.total_steps, sched.warmup_steps, sched.min_lr_ratio
        )
        return optimizer, scheduler

    def raw_loop(self) -> list[float]:
        """Seconds per step, per window of WINDOW steps (as the trainer measures itself)."""
        import torch
        import torch.nn.functional as F

        model = self.model()
        optimizer, scheduler = self.optimizer(model)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype is torch.float16)
        inputs, targets = self.inputs.to(self.device), self.targets.to(self.device)
        clip = self.cfg.trainer.gradient_clip_val
        model.train()
        windows = Windows()
        for epoch in range(self.args.epochs):
            order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(epoch))
            for step in range(self.steps_per_epoch):
                rows = order[step * BATCH : (step + 1) * BATCH].to(self.device, non_blocking=True)
                x, y = inputs[rows], targets[rows]
                if self.args.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, self.dtype, enabled=self.dtype is not None):
                    output = model(x)
                loss = F.cross_entropy(output.float(), y)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                windows.step(loss, step + 1 == self.steps_per_epoch)
        return windows.seconds

    def trainer(self, logger=None, cfg=None) -> tuple[list[float], float]:
        """The trainer's per-step times between its log calls, and its whole fit per step."""
        from my_dl_project.training.trainer import fit

        logger = logger or self.throughput_logger()()
        with tempfile.TemporaryDirectory() as out:
            start = clock()
            metrics = fit(cfg or self.cfg, out, logger)
            wall = (clock() - start) / metrics["step"]
        logger.finish()
        return logger.windows.seconds, wall

    def throughput_logger(self, base=None):
        from my_dl_project.tracking.base import NullLogger

        base = base or NullLogger

        class Throughput(base):
            """A logger that times the trainer's windows between its training-loss logs (at
            every log_every_n_steps-th step and at each epoch's end, after a ``.item()``): the
            whole of each step, not only what the trainer's own throughput figure counts."""

            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                self.windows = Windows()
                self.logged = 0  # the step of the previous training log

            def log_metrics(self, metrics, step) -> None:
                super().log_metrics(metrics, step)
                if "train/loss" in metrics and step > self.logged:
                    self.windows.steps = step - self.logged
                    self.windows.end(step)
                    self.logged = step

        return Throughput

    def lightning_loop(self, training_only: bool = False) -> tuple[list[float], float] | None:
        """Lightning's per-step times over whole windows, and its whole fit per step: with the
        trainer's work (load the splits, validate one batch and checkpoint every epoch) unless
        ``training_only``."""
        try:
            import lightning as L
        except ImportError:
            try:
                import pytorch_lightning as L
            except ImportError:
                return None
        import torch
        import torch.nn.functional as F
        from torch.utils.data import DataLoader, TensorDataset

        bench = self

        class Module(L.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.model = bench.model()

            def training_step(self, batch, _index):
                x, y = batch
                if bench.args.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                return F.cross_entropy(self.model(x).float(), y)

            def validation_step(self, batch, _index):
                x, y = batch
                output = self.model(x).float()
                self.log("val_loss", F.cross_entropy(output, y))
                self.log("val_accuracy", (output.argmax(dim=1) == y).float().mean())

            def configure_optimizers(self):
                optimizer, scheduler = bench.optimizer(self.model)
                return {
                    "optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
                }

        class Data(L.LightningDataModule):
            """The splits, read and checked by the generated project's own loader."""

            def setup(self, stage: str) -> None:
                self.train, self.val = bench.split("train"), bench.split("val")

            def train_dataloader(self):
                return loader(self.train, shuffle=True)

            def val_dataloader(self):
                return loader(self.val, shuffle=False)

        def loader(dataset, shuffle: bool) -> DataLoader:
            return DataLoader(
                dataset,
                batch_size=BATCH,
                shuffle=shuffle,
                drop_last=shuffle,
                pin_memory=self.device.type == "cuda",
            )

        class Timer(L.Callback):
            def __init__(self) -> None:
                self.windows = Windows()

            def on_train_start(self, trainer, module) -> None:
                self.windows.start = clock()  # the loops' windows start there too

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
                self.windows.step(outputs["loss"], batch_idx + 1 == trainer.num_training_batches)

        torch.manual_seed(0)
        timer = Timer()
        with tempfile.TemporaryDirectory() as out:
            start = clock()
            trainer = L.Trainer(
                max_epochs=self.args.epochs,
                accelerator="gpu" if self.device.type == "cuda" else "cpu",
                devices=1,
                precision="32-true" if self.args.precision == "32" else self.args.precision,
                gradient_clip_val=self.cfg.trainer.gradient_clip_val,
                logger=False,
                enable_checkpointing=not training_only,
                callbacks=[timer]
                + (
                    []
                    if training_only
                    else [
                        L.pytorch.callbacks.ModelCheckpoint(
                            dirpath=out, monitor="val_loss", mode="min", save_last=True
                        )
                    ]
                ),
                default_root_dir=out,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                limit_val_batches=0 if training_only else 1,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "the dataloader does not have many workers" etc.
                if training_only:  # the data already in memory, as the first benchmark had it
                    data = TensorDataset(self.inputs, self.targets)
                    trainer.fit(Module(), loader(data, shuffle=True))
                else:
                    trainer.fit(Module(), datamodule=Data())
            seconds = clock() - start
        return timer.windows.seconds, seconds / trainer.global_step

    # ---- the report ---------------------------------------------------------------------------

    def run(self) -> dict:
        import torch

        args, results = self.args, {}
        lightning = None if args.skip_lightning else self.lightning_loop()  # also a warm-up
        self.raw_loop()  # warm-ups: first-call allocations, kernel selection, compilation
        self.trainer()
        bare = lightning is not None and args.lightning_training_only
        # One list per run (its windows, or its whole fit): the runs are interleaved, so a run's
        # figures compare with the raw loop's of the same run (the spread below).
        raw, steady, wall, light, light_wall, bare_wall = [], [], [], [], [], []
        for _ in range(args.repeats):
            raw.append(self.raw_loop())
            windows, seconds = self.trainer()
            steady.append(windows)
            wall.append([seconds])
            if lightning is not None:
                windows, seconds = self.lightning_loop()
                light.append(windows)
                light_wall.append([seconds])
            if bare:
                bare_wall.append([self.lightning_loop(training_only=True)[1]])
        raw_us = statistics.median(list(chain(*raw))) * 1e6
        where = (
            torch.cuda.get_device_name()
            if self.device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads"
        )
        flags = [f"precision {args.precision}"]
        flags += ["torch.compile"] * args.compile + ["channels_last"] * args.channels_last
        print(
            f"SmallCNN on digits, batch {BATCH}, {args.epochs} epochs x {self.steps_per_epoch} "
            f"steps, {where}, {', '.join(flags)}, {args.clock} clock, {args.repeats} runs each "
            f"(torch {torch.__version__}):"
        )
        print(f"  {'raw PyTorch loop':28s} {raw_us:8.0f} us/step")
        rows = [("trainer, steady state", steady), ("trainer, whole fit", wall)]
        if lightning is not None:
            rows += [("Lightning, steady state", light), ("Lightning, whole fit", light_wall)]
        if bare:
            rows += [("Lightning, training only", bare_wall)]
        results = {"device": where, "flags": flags, "raw_us": raw_us}
        for label, runs in rows:
            us = statistics.median(list(chain(*runs))) * 1e6
            # Each run against the raw loop's run beside it: the spread of the ratio.
            paired = [
                statistics.median(r) / statistics.median(x) for r, x in zip(raw, runs, strict=True)
            ]
            print(
                f"  {label:28s} {us:8.0f} us/step   {raw_us / us:.3f} of raw "
                f"(runs: {min(paired):.3f} - {max(paired):.3f})"
            )
            results[label] = {"us_per_step": us, "of_raw": raw_us / us, "runs": paired}
        if lightning is None and not args.skip_lightning:
            print("  (Lightning is not installed here: no Lightning column)")
        print(
            "    (whole fits include set-up, loading and checking the data, and validation and "
            "checkpoints every epoch; steady states: whole 5-step windows inside an epoch)"
        )
        if not args.skip_tracking and self.device.type == "cpu":
            results["tracking"] = self.tracking()
        if not args.skip_startup:
            results["startup_s"] = self.startup()
        return results

    def tracking(self) -> dict | None:
        """Whole fits with logger=none and logger=mlflow, at the default log interval, over a
        short and a long fit: the difference separates the per-step cost of tracking from its
        one-off cost (opening the run, logging the config)."""
        try:
            from my_dl_project.tracking.mlflow_logger import MlflowLogger
        except ImportError:
            print("  (MLflow is not installed here: no tracking comparison)")
            return None
        from my_dl_project.config import compose

        uri = f"sqlite:///{self.root}/mlflow.db"

        class Timed(MlflowLogger):
            """Adds up the time spent inside the logger's methods during a fit."""

            spent = 0.0

        def timed(name):
            def method(self, *args, **kwargs):
                start = time.perf_counter()
                try:
                    return getattr(MlflowLogger, name)(self, *args, **kwargs)
                finally:
                    Timed.spent += time.perf_counter() - start

            return method

        for name in ("log_params", "log_metrics", "set_tags", "log_artifact", "log_table"):
            setattr(Timed, name, timed(name))
        tracked = self.throughput_logger(Timed)

        def mlflow_logger():
            return tracked(uri, "bench", log_system_metrics=False, log_model=False)

        short = compose(self.overrides)  # default log_every_n_steps
        long = compose([*self.overrides, f"trainer.max_epochs={LONG}"])
        self.trainer(mlflow_logger(), short)  # warm-up: creates the MLflow database
        figures: dict[str, list[float]] = {"short none": [], "short mlflow": []}
        figures.update({"long none": [], "long mlflow": []})
        for _ in range(self.args.repeats):
            for length, cfg in (("short", short), ("long", long)):
                figures[f"{length} none"].append(self.trainer(None, cfg)[1])
                figures[f"{length} mlflow"].append(self.trainer(mlflow_logger(), cfg)[1])
        inside: list[float] = []  # the share of the long fit spent inside the logger
        for _ in range(self.args.repeats):
            Timed.spent = 0.0
            _, seconds = self.trainer(mlflow_logger(), long)
            inside.append(Timed.spent / (seconds * LONG * self.steps_per_epoch))
        us = {key: statistics.median(values) * 1e6 for key, values in figures.items()}
        short_steps = self.args.epochs * self.steps_per_epoch
        long_steps = LONG * self.steps_per_epoch
        # Extra seconds of a tracked fit = one-off + per_step * steps, for both lengths.
        extra_short = (us["short mlflow"] - us["short none"]) * short_steps
        extra_long = (us["long mlflow"] - us["long none"]) * long_steps
        per_step_us = (extra_long - extra_short) / (long_steps - short_steps)
        one_off_ms = (extra_short - per_step_us * short_steps) / 1e3
        print(
            f"  logger=mlflow against logger=none, default log_every_n_steps="
            f"{short.trainer.log_every_n_steps}, fits of {short_steps} and {long_steps} steps:"
        )
        for length, steps in (("short", short_steps), ("long", long_steps)):
            print(
                f"    whole fit per step, {steps} steps: none {us[f'{length} none']:.0f} us, "
                f"mlflow {us[f'{length} mlflow']:.0f} us"
            )
        share = per_step_us / us["long none"]
        print(
            f"    per-step overhead {per_step_us:+.0f} us = {share:+.1%} of a step "
            f"(goal: under 2%); one-off per run {one_off_ms:.0f} ms (config, first writes)"
        )
        print(
            f"    time inside the logger's methods during a {long_steps}-step fit: "
            f"{statistics.median(inside):.2%} of the fit (the direct cost, noise-free: the "
            "difference above is the total, indirect costs included, and is noisy on a busy "
            "machine)"
        )
        return {
            **us,
            "per_step_us": per_step_us,
            "share": share,
            "one_off_ms": one_off_ms,
            "inside_logger_share": statistics.median(inside),
        }

    def startup(self) -> float:
        # The project's code first, then whatever this process was given (wheels carried along).
        python_path = os.pathsep.join(filter(None, [str(self.project / "src"), *sys.path[1:]]))
        seconds = []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as out:
                command = [sys.executable, "-m", f"{PACKAGE}.train", *self.data_overrides]
                command += ["logger=none", "debug=fast_dev_run", f"paths.output_dir={out}"]
                start = time.perf_counter()
                subprocess.run(
                    command,
                    cwd=self.project,
                    env={"PYTHONPATH": python_path, "PATH": "/usr/bin:/bin"},
                    check=True,
                    capture_output=True,
                )
                seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        print(f"  start-up, debug=fast_dev_run {median:8.2f} s (goal: under 6 s)")
        return median


if __name__ == "__main__":
    main()
