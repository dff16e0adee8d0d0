"""Loader throughput on image files: decoded (and augmented) images per second per worker, and
how much of the default image model's step waits on data with 2 workers.

Renders the default project (digits, SmallCNN) and writes two sets of image files:

- ``digits``: scikit-learn's 1,797 8x8 digits as 8-bit grey PNG files (the bundled data);
- ``photos``: 2,000 32x32 RGB JPEG files (smooth random images, quality 90).

For each set and 1 and 2 workers, the project's own ``ImageFiles`` (decode, ``Preprocess``, and
the configured ``data.augment``: the digits' RandomAffine) is read through a DataLoader with the
trainer's batch sampler (batch 64), as ``data.augment_on: workers`` trains. Images per second
per worker count the batches after the first (the workers' start-up is left out).

Then the data wait: the default model, optimizer, schedule, loss and clipping train on the
digits files read by 2 workers (the trainer's step, written out as a loop), and the time spent
blocked in ``next(loader)`` is divided by the whole step's time (the wait plus the forward,
backward and optimizer step). Medians, with the spread (min-max), over ``--repeats`` rounds.
``--wait-variants`` measures the same wait with other loaders (``"1"``, ``"0"``,
``"2,persistent"``, ``"2,prefetch=4"``, ...): each variant reads a fresh dataset (an empty
cache of decoded files); persistent workers keep theirs from one epoch to the next.

A measurement, not a test: ``python benchmarks/data_loading.py`` (``make bench``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "my_dl_project"
BATCH = 64


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, help="a rendered default project (else rendered)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the data-wait training")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--wait-variants",
        nargs="*",
        default=[],
        help='data-wait loaders besides 2 workers: "W[,persistent][,prefetch=K]"',
    )
    args = parser.parse_args()
    args.json = args.json and args.json.resolve()  # the benchmark runs from the project
    return args


def render(into: Path) -> Path:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(str(ROOT), str(into), defaults=True, quiet=True, vcs_ref="HEAD")
    return into


def project_modules(project: Path) -> dict:
    sys.path.insert(0, str(project / "src"))
    os.chdir(project)  # compose reads configs/ from the project
    names = ["config", "data.images", "data.augmentation", "training.sampling", "tasks"]
    names += ["models.build"]
    return {name: importlib.import_module(f"{PACKAGE}.{name}") for name in names}


def write_digits(folder: Path) -> tuple[list[str], np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(np.rint(digits.images * 255 / 16), 0, 255).astype(np.uint8)
    paths = []
    for index, image in enumerate(pixels):
        paths.append(f"{index}.png")
        Image.fromarray(image, mode="L").save(folder / paths[-1])
    return paths, digits.target


def write_photos(folder: Path, count: int = 2000) -> tuple[list[str], np.ndarray]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse, mode="RGB").resize((32, 32), Image.BILINEAR)
        paths.append(f"{index}.jpg")
        image.save(folder / paths[-1], quality=90)
    return paths, rng.integers(0, 10, count)


def whole_batch(batch):
    return batch  # ImageFiles returns whole batches


def loader(m: dict, files, workers: int, epoch: int = 0, **options):
    """The trainer's loader (``options``: other DataLoader arguments, for the variants)."""
    from torch.utils.data import DataLoader

    sampler = m["training.sampling"].EpochBatchSampler(len(files), BATCH, seed=0)
    sampler.set_epoch(epoch)
    files.set_epoch(epoch)
    return DataLoader(
        files, batch_sampler=sampler, num_workers=workers, collate_fn=whole_batch, **options
    )


def variant(text: str) -> tuple[int, dict]:
    """``"2,persistent,prefetch=4"`` -> (2, DataLoader options)."""
    workers, *flags = text.split(",")
    options: dict = {}
    for flag in flags:
        if flag == "persistent":
            options["persistent_workers"] = True
        elif flag.startswith("prefetch="):
            options["prefetch_factor"] = int(flag.split("=")[1])
        else:
            raise SystemExit(f"unknown loader option {flag!r} in {text!r}")
    return int(workers), options


def images_per_second_per_worker(m: dict, files, workers: int) -> float:
    batches = iter(loader(m, files, workers))
    next(batches)  # the workers have started
    start, count = time.perf_counter(), 0
    for images, _ in batches:
        count += len(images)
    return count / (time.perf_counter() - start) / workers


def data_wait(
    m: dict, cfg, files, epochs: int, workers: int = 2, **options
) -> tuple[float, float, float]:
    """(share of the step time blocked in next(loader), steps per second) over ``epochs``, and
    the median seconds to an epoch's first batch (the workers' start-up, not in the share).

    Persistent workers are started once (their copies of the dataset keep the epoch they were
    started with: the augmentation's seeds would be stale, its cost is the same)."""
    import torch

    task = m["tasks"].for_data(cfg.data)
    torch.manual_seed(0)
    model = m["tasks"].build_model(cfg)
    optimizer = m["models.build"].instantiate(cfg.optimizer, "optimizer")(model.parameters())
    steps = epochs * (len(files) // BATCH)
    scheduler = m["models.build"].instantiate(cfg.scheduler, "scheduler")(optimizer, steps)
    waited = total = 0.0
    starts: list[float] = []  # seconds to the first batch of each epoch (left out above)
    kept = loader(m, files, workers, 0, **options) if options else None
    for epoch in range(epochs):
        if kept is not None:
            kept.batch_sampler.set_epoch(epoch)
            files.set_epoch(epoch)  # reaches the workers unless they persist
        first = time.perf_counter()
        batches = iter(kept or loader(m, files, workers, epoch))
        next(batches)  # the start-up of an epoch's workers is not a step's wait
        starts.append(time.perf_counter() - first)
        while True:
            start = time.perf_counter()
            try:
                inputs, targets = next(batches)
            except StopIteration:
                break
            got = time.perf_counter()
            loss = task.loss(model(inputs).float(), task.encode(targets))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss.item()  # the trainer reads the loss at its log points
            end = time.perf_counter()
            waited, total = waited + got - start, total + end - start
    return waited / total, steps / total, statistics.median(starts)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    args = arguments()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        project = args.project or render(Path(tmp) / "project")
        m = project_modules(project.resolve())
        cfg = m["config"].compose(["logger=none"])
        images = m["data.images"]
        augment = m["data.augmentation"].augmentation_for(cfg.data)
        sets = {}
        for name, write, shape in (
            ("digits", write_digits, [1, 8, 8]),
            ("photos", write_photos, [3, 32, 32]),
        ):
            folder = Path(tmp) / name
            folder.mkdir()
            paths, labels = write(folder)
            targets = torch.as_tensor(labels, dtype=torch.long)
            preprocess = images.Preprocess([0, 255], shape[1:])
            sets[name] = {
                augmented: images.ImageFiles(
                    folder, paths, targets, shape[0], preprocess, augment if augmented else None
                )
                for augmented in (False, True)
            }
            if name == "digits":  # a fresh dataset (empty cache) for each data-wait variant
                fresh_digits = partial(
                    images.ImageFiles, folder, paths, targets, shape[0], preprocess, augment
                )
        load = os.getloadavg()[0]  # other work on the machine skews every figure
        print(f"{os.cpu_count()} CPUs (load {load:.1f}), torch {torch.__version__}, batch {BATCH}, "
              f"augmentation: {[node['_target_'] for node in cfg.data.augment]}")  # fmt: skip
        figures: dict = {"throughput": {}, "cpus": os.cpu_count(), "load_before": load}
        print("Images per second per worker (median, min-max):")
        for name, variants in sets.items():
            for augmented, files in variants.items():
                for workers in (1, 2):
                    rates = [
                        images_per_second_per_worker(m, files, workers) for _ in range(args.repeats)
                    ]
                    what = "decoded + augmented" if augmented else "decoded"
                    key = f"{name}, {what}, {workers} worker{'s' * (workers > 1)}"
                    figures["throughput"][key] = summary(rates)
                    s = figures["throughput"][key]
                    print(f"  {key:42s} {s['median']:8.0f}  ({s['min']:.0f}-{s['max']:.0f})")
        shares, rates, starts = [], [], []
        for _ in range(args.repeats):
            share, rate, start = data_wait(m, cfg, sets["digits"][True], args.epochs)
            shares.append(share)
            rates.append(rate)
            starts.append(start)
        figures["data_wait"] = {
            "share": summary(shares),
            "steps_per_s": summary(rates),
            "first_batch_s": summary(starts),
        }
        s, r = figures["data_wait"]["share"], figures["data_wait"]["steps_per_s"]
        print(
            "Default model on the digits files, 2 workers, augmented: "
            f"{100 * s['median']:.1f}% of the step time waiting on data "
            f"({100 * s['min']:.1f}-{100 * s['max']:.1f}%), "
            f"{r['median']:.0f} steps/s ({r['min']:.0f}-{r['max']:.0f}), first batch of an epoch "
            f"{1000 * statistics.median(starts):.0f} ms ({1000 * min(starts):.0f}-"
            f"{1000 * max(starts):.0f})"
        )
        for text in args.wait_variants:
            workers, options = variant(text)
            shares, rates, starts = [], [], []
            for _ in range(args.repeats):
                share, rate, start = data_wait(
                    m, cfg, fresh_digits(), args.epochs, workers, **options
                )
                shares.append(share)
                rates.append(rate)
                starts.append(start)
            s, r, f = summary(shares), summary(rates), summary(starts)
            figures["data_wait_" + text] = {"share": s, "steps_per_s": r, "first_batch_s": f}
            print(
                f"  loader {text:24s} {100 * s['median']:5.1f}% waiting "
                f"({100 * s['min']:.1f}-{100 * s['max']:.1f}%), "
                f"{r['median']:.0f} steps/s ({r['min']:.0f}-{r['max']:.0f}), first batch "
                f"{1000 * f['median']:.0f} ms ({1000 * f['min']:.0f}-{1000 * f['max']:.0f})"
            )
        figures["load_after"] = os.getloadavg()[0]
        print(f"load at the end {figures['load_after']:.1f}")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
