"""torch.profiler over a few steps of the loop (``debug=profiler``, ``trainer.profiler: true``)."""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import distributed

log = logging.getLogger(__name__)


@contextlib.contextmanager
def profile_steps(enabled: bool, output_dir: Path, ctx: distributed.Context) -> Iterator[Any]:
    """torch.profiler over steps 2-4 (after a warm-up step); a Chrome trace per rank."""
    if not enabled:
        yield None
        return
    from torch.profiler import ProfilerActivity, profile, schedule

    folder = output_dir / "profiler"
    folder.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU]
    if ctx.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)

    def export(prof: Any) -> None:
        prof.export_chrome_trace(str(folder / f"trace-rank{ctx.rank}.json"))
        if ctx.is_main:
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
            (folder / "summary.txt").write_text(table + "\n")
            log.info("profiler trace written to %s", folder)

    with profile(
        activities=activities,
        schedule=schedule(wait=1, warmup=1, active=3, repeat=1),
        on_trace_ready=export,
        record_shapes=True,
    ) as prof:
        yield prof
