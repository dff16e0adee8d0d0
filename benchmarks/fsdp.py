"""FSDP against DDP on 2 CPU ranks (gloo, torchrun): step time and memory per rank.

Renders the default project (or takes ``--project``) and trains the project's own ``MLP``
(``--hidden`` wide, ``--layers`` hidden layers: wide enough that sharding shows) on random
rows, with AdamW and gradient clipping as the trainer does, under
``torchrun --nproc_per_node 2``: once wrapped in DDP, once sharded by the project's
``training/fsdp.py`` (``trainer.strategy=fsdp``, blocks then the root). Per rank:

- the step time: median of ``--steps`` optimizer steps after 2 warm-up steps;
- the training state it holds: parameters + gradients + optimizer state, in MB (a shard's
  local bytes under FSDP);
- the process's peak resident memory (``ru_maxrss``), in MB, and its growth from the moment
  before the model is built (torch and the process group already loaded).

Each strategy runs ``--repeats`` times (a fresh torchrun each); the figures are the median and
the range (min-max) over the runs of rank 0's values (the ranks hold equal shares).

A measurement, not a test: ``python benchmarks/fsdp.py [--hidden 2048 --layers 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "my_dl_project"


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, help="a rendered default project (else rendered)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--worker", choices=["ddp", "fsdp"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def render(into: Path) -> Path:
    import copier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copier.run_copy(str(ROOT), str(into), defaults=True, quiet=True, vcs_ref="HEAD")
    return into


# ---- one rank (under torchrun) ------------------------------------------------------------------


def local_bytes(tensor) -> int:
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return local.numel() * local.element_size()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist
    from omegaconf import OmegaConf
    from torch import nn

    sys.path.insert(0, str(args.project / "src"))
    fsdp = __import__(f"{PACKAGE}.training.fsdp", fromlist=["shard"])
    mlp = __import__(f"{PACKAGE}.models.mlp", fromlist=["MLP"])

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    baseline = peak_rss_mb()  # torch, the process group: before any model exists
    width = args.hidden
    model = mlp.MLP(width, 10, hidden_dims=[width] * args.layers, dropout=0.0)
    if args.worker == "fsdp":
        settings = OmegaConf.create(
            {"reshard_after_forward": True, "activation_checkpointing": False}
        )
        net = fsdp.shard(model, "32", settings)
    else:
        net = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(rank)
    times = []
    for step in range(args.steps + 2):
        inputs = torch.randn(args.batch, width, generator=generator)
        targets = torch.randint(0, 10, (args.batch,), generator=generator)
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(net(inputs), targets)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state = sum(local_bytes(p) + local_bytes(p.grad) for p in model.parameters())
        state += sum(
            local_bytes(v) for s in optimizer.state.values() for v in s.values() if v.dim() > 0
        )
        optimizer.zero_grad(set_to_none=True)
        dist.barrier()
        if step >= 2:
            times.append(time.perf_counter() - start)
    figures = {
        "step_ms": statistics.median(times) * 1000,
        "state_mb": state / 2**20,
        "peak_rss_mb": peak_rss_mb(),
        "rss_growth_mb": peak_rss_mb() - baseline,
    }
    if rank == 0:
        args.out.write_text(json.dumps(figures))
    dist.barrier()
    dist.destroy_process_group()


# ---- the driver ---------------------------------------------------------------------------------


def one_run(args: argparse.Namespace, strategy: str, out: Path) -> dict[str, float]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        __file__, "--worker", strategy, "--project", str(args.project), "--out", str(out),
        "--hidden", str(args.hidden), "--layers", str(args.layers), "--steps", str(args.steps),
        "--batch", str(args.batch),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    return json.loads(out.read_text())


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    args = arguments()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        if args.project is None:
            args.project = render(Path(scratch) / "project")
        args.project = args.project.resolve()
        results: dict[str, list[dict[str, float]]] = {"ddp": [], "fsdp": []}
        for repeat in range(args.repeats):
            for strategy in results:  # alternate: a busy spell hits both
                out = Path(scratch) / f"{strategy}-{repeat}.json"
                results[strategy].append(one_run(args, strategy, out))
    params = sum(args.hidden * n + n for n in [args.hidden] * args.layers) + args.hidden * 10 + 10
    print(
        f"MLP {args.layers} x {args.hidden} ({params / 1e6:.1f} M parameters), batch "
        f"{args.batch} per rank, 2 CPU ranks (gloo), {args.repeats} runs of {args.steps} steps"
    )
    print(
        "| strategy | step (ms) | training state per rank (MB) | peak RSS per rank (MB) "
        "| peak RSS growth from before the model (MB) |"
    )
    print("| --- | --- | --- | --- | --- |")
    keys = ("step_ms", "state_mb", "peak_rss_mb", "rss_growth_mb")
    for strategy, runs in results.items():
        cells = [summary([run[key] for run in runs]) for key in keys]
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
