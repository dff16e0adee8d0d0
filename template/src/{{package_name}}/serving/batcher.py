"""Micro-batching: concurrent requests share one forward pass.

A request's inputs wait up to ``max_wait_ms`` (counted from the oldest waiting request) for
others to join them; the rows waiting then go to the model together, at most ``max_batch_size``
of them, and each request gets its own rows of the answers back. A request larger than
``max_batch_size`` runs on its own. One forward pass runs at a time, in a worker thread, so the
event loop goes on accepting (and parsing) requests meanwhile: while the model runs, the next
batch fills up, which is where batching pays under load.

Some fifty lines, which is why the service needs no serving framework for it.
"""

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class _Waiting:
    inputs: np.ndarray
    future: asyncio.Future
    since: float  # the event loop's clock when the request arrived


class MicroBatcher:
    """``await batcher.predict(inputs)``: ``run``'s answers for ``inputs``, run in a batch.

    ``run`` takes a numpy batch and returns one answer per row; ``stack`` joins the inputs of
    several requests into one batch (default: ``np.concatenate``; token ids of different lengths
    need padding). Call ``start`` in the event loop before the first request, ``stop`` after the
    last.
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int,
        max_wait_ms: float,
        stack: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None,
    ) -> None:
        self.run = run
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.stack = stack or (lambda parts: np.concatenate(parts, axis=0))
        self.batches = 0  # forward passes run: what a test (or a curious user) may check
        self._waiting: deque[_Waiting] = deque()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model")
        self._wake = wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._serve(wake), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for waiting in self._waiting:
            if not waiting.future.done():
                waiting.future.set_exception(RuntimeError("the service is stopping"))
        self._waiting.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._wake = None

    async def predict(self, inputs: np.ndarray) -> np.ndarray:
        if self._wake is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        loop = asyncio.get_running_loop()
        waiting = _Waiting(inputs, loop.create_future(), loop.time())
        self._waiting.append(waiting)
        self._wake.set()
        return await waiting.future

    def _rows_waiting(self) -> int:
        return sum(len(w.inputs) for w in self._waiting)

    async def _serve(self, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await wake.wait()
            wake.clear()
            while self._waiting:
                left = self._waiting[0].since + self.max_wait_s - loop.time()
                if left > 0 and self._rows_waiting() < self.max_batch_size:
                    await asyncio.sleep(left)  # others may join meanwhile
                batch = self._take()
                if batch:
                    await self._run(batch, loop)

    def _take(self) -> list[_Waiting]:
        """The oldest request, and the next ones while they fit in ``max_batch_size`` rows."""
        batch: list[_Waiting] = []
        rows = 0
        while self._waiting:
            waiting = self._waiting[0]
            if batch and rows + len(waiting.inputs) > self.max_batch_size:
                break
            self._waiting.popleft()
            if waiting.future.done():  # the client went away: nothing to compute for it
                continue
            batch.append(waiting)
            rows += len(waiting.inputs)
        return batch

    async def _run(self, batch: list[_Waiting], loop: asyncio.AbstractEventLoop) -> None:
        try:
            inputs = self.stack([w.inputs for w in batch])
            answers = await loop.run_in_executor(self._executor, self.run, inputs)
            self.batches += 1
        except BaseException as error:  # every request of the batch gets the error (a 500)
            stopping = isinstance(error, asyncio.CancelledError)
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(
                        RuntimeError("the service is stopping") if stopping else error
                    )
            if stopping:
                raise
            return
        start = 0
        for waiting in batch:
            end = start + len(waiting.inputs)
            if not waiting.future.done():
                waiting.future.set_result(answers[start:end])
            start = end
