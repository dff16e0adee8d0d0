"""The step-time cost of a checkpoint, synchronous against asynchronous; and the EMA's per step.

Renders the default project and uses its own ``training/checkpoint.py`` (the write: torch.save,
fsync, rename, keep-last pruning), ``training/async_save.py`` (the copy to CPU memory and the
background writer) and ``training/ema.py``. For two models, the default CNN (``cnn``, 0.1 MB) and
an MLP of 4 layers 2,560 wide (about 79 MB of weights, 237 MB with Adam's moments), it trains
``STEPS`` Adam steps on random data, saving model + optimizer every ``EVERY`` steps into a temporary
folder on the local disk, three ways: no saves, synchronous saves, asynchronous saves. The cost
of a checkpoint on the step is the time the training thread spends in the save call (the whole
write, or the copy to CPU memory and the hand-over); the run's is (the loop's time - the loop's
time without saves) / the number of saves, which counts the background write's competition for
the cores too, and is noisy on a busy machine. Also ``EMA.update`` per step.

A measurement, not a test: ``python benchmarks/checkpoint.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import copier
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
RUNS, STEPS, EVERY = 3, 20, 10


def project(tmp: str):
    """The rendered default project's modules (checkpoint, async_save, ema) and its model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(str(ROOT), tmp, defaults=True, quiet=True, vcs_ref="HEAD")
    sys.path.insert(0, str(Path(tmp) / "src"))
    names = ("checkpoint", "async_save", "ema")
    modules = [importlib.import_module(f"my_dl_project.training.{n}") for n in names]
    config = importlib.import_module("my_dl_project.config")
    tasks = importlib.import_module("my_dl_project.tasks")
    return (*modules, tasks.build_model(config.compose(["logger=none"])))


def models(cnn: nn.Module) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    width = 2560
    mlp = nn.Sequential(*(m for _ in range(3) for m in (nn.Linear(width, width), nn.ReLU())))
    mlp.append(nn.Linear(width, 10))
    return {
        "cnn (default)": (cnn, torch.randn(64, 1, 8, 8)),
        "mlp 79 MB": (mlp, torch.randn(64, width)),
    }


def loop(model, inputs, optimizer, save, ema=None) -> float:
    """Seconds for STEPS steps, ``save(step)`` mid-way through every EVERY steps (no save at the
    end: the steps after a save are those its background write overlaps)."""
    start = time.perf_counter()
    for step in range(1, STEPS + 1):
        loss = model(inputs).float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update()
        if step % EVERY == EVERY // 2:
            save(step)
    return time.perf_counter() - start


def measure(name, model, inputs, checkpoint, async_save, ema_module) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loop(model, inputs, optimizer, lambda step: None)  # warm up, and Adam's moments exist
    snapshot = lambda: {"model": model.state_dict(), "optimizer": optimizer.state_dict()}  # noqa: E731
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6
    results: dict[str, list[float]] = {"none": [], "sync": [], "async": []}
    in_call: dict[str, list[float]] = {"sync": [], "async": []}
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory(dir=".") as folder:
            results["none"].append(loop(model, inputs, optimizer, lambda step: None))

            def sync(step, folder=Path(folder) / "sync"):
                start = time.perf_counter()
                checkpoint.save(snapshot(), folder, step, 2)
                in_call["sync"].append(time.perf_counter() - start)

            writer = async_save.Writer()

            def background(step, folder=Path(folder) / "async", writer=writer):
                start = time.perf_counter()
                writer.submit(checkpoint.save, async_save.copied(snapshot()), folder, step, 2)
                in_call["async"].append(time.perf_counter() - start)

            results["sync"].append(loop(model, inputs, optimizer, sync))
            results["async"].append(loop(model, inputs, optimizer, background))
            writer.close()  # done by then: the last save is EVERY / 2 steps before the end
    saves = STEPS // EVERY
    base = statistics.median(results["none"])
    print(f"\n{name}: {size:.1f} MB of weights; {STEPS} steps, a save every {EVERY} ({RUNS} runs)")
    print(f"  step without saves: {1000 * base / STEPS:.1f} ms")
    for way in ("sync", "async"):
        costs = [1000 * (t - base) / saves for t in results[way]]
        calls = [1000 * t for t in in_call[way]]
        print(
            f"  {way:5}: the step's save call {statistics.median(calls):.1f} ms (range "
            f"{min(calls):.1f} to {max(calls):.1f}); the run's time per save "
            f"{statistics.median(costs):.1f} ms (range {min(costs):.1f} to {max(costs):.1f})"
        )
    ema = ema_module.EMA(model, decay=0.999)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(50):
            ema.update()
        times.append(1000 * (time.perf_counter() - start) / 50)
    print(
        f"  EMA.update: {statistics.median(times):.3f} ms per step (range {min(times):.3f} to "
        f"{max(times):.3f}), {statistics.median(times) / (10 * base / STEPS):.1f}% of a step"
    )


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, async_save, ema_module, cnn = project(tmp)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        for name, (model, inputs) in models(cnn).items():
            measure(name, model, inputs, checkpoint, async_save, ema_module)


if __name__ == "__main__":
    main()
