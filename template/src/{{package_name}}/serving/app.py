"""The HTTP service's app: ``create_app(model_path, ...)`` -> a FastAPI application.

- ``POST /predict``: tables and texts as JSON ``{"rows": [{...}, ...]}``, images as
  multipart/form-data parts named ``files``; 200 ``{"predictions": [{...}, ...]}`` with the
  columns ``predict`` writes, one object per row or file. 400 malformed JSON or form, or the
  wrong shape; 413 over ``max_rows`` rows or ``max_body_mb``; 415 the wrong content type; 422
  data that breaks the raw schema or files that cannot be used: ``{"error", "failures": [...]}``,
  the failure table ``validate`` and ``predict`` report (``data/checks.Failure``). Anything else
  is a bug: a 500 with a message, logged with its traceback, and the service goes on.
- ``GET /health``: ``{"status": "ok"}`` once the model is loaded.
- ``GET /metadata``: the model's ``predictor.json`` (input, output, data, versions) and
  ``{"model": {"path", "format"}}``.

Concurrent requests are batched (``batcher.MicroBatcher``); each request is summarised for
monitoring (``monitoring.RequestLog``: counts, latency, per-feature histograms, never the
inputs themselves).
"""

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect

from .batcher import MicroBatcher
from .inputs import Batch, RequestRefused, ServedModel, json_rows
from .monitoring import RequestLog, monitored_values

logger = logging.getLogger(__name__)

#: A body over the limit is read on (and dropped) up to this many times the limit before the
#: 413 goes out, so that the client, still sending, reads the answer instead of a reset.
DRAIN_FACTOR = 4


def create_app(
    model_path: str | Path,
    *,
    max_batch_size: int = 64,
    max_wait_ms: float = 2.0,
    max_rows: int = 1000,
    max_body_mb: float = 10.0,
    log_path: str | Path | None = None,
    every_s: float = 60.0,
    every_requests: int = 1000,
) -> FastAPI:
    """The service of the exported model at ``model_path`` (loaded now: a broken file fails
    here, before anything listens)."""
    model = ServedModel.load(model_path)
    batcher = MicroBatcher(model.run, max_batch_size, max_wait_ms, stack=model.stack)
    request_log = RequestLog(log_path, model.metadata, every_s, every_requests)
    body_limit = int(max_body_mb * 2**20)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            request_log.close()  # the last window's summary

    app = FastAPI(
        title=f"{__name__.split('.')[0]} prediction service",
        summary=f"{model.metadata['data']['task']} on {model.metadata['data']['name']}",
        lifespan=lifespan,
    )
    app.state.model, app.state.batcher, app.state.request_log = model, batcher, request_log

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(_internal_error(error), status_code=500)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        fmt = model.path.suffix.lstrip(".")
        return {**model.metadata, "model": {"path": str(model.path), "format": fmt}}

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        batch: Batch | None = None
        answers: np.ndarray | None = None
        try:
            batch = await _read_batch(request, model, body_limit, max_rows)
            answers = await batcher.predict(batch.inputs)
            status, body = 200, {"predictions": model.answers(batch, answers)}
            response = JSONResponse(body, status_code=status)  # rendered here: errors are 500s
        except RequestRefused as refused:
            status, response = refused.status, JSONResponse(refused.body(), refused.status)
        except Exception as error:
            status, response = 500, JSONResponse(_internal_error(error), status_code=500)
        _record(request_log, model, status, started, batch, answers)
        return response

    return app


def _internal_error(error: Exception) -> dict[str, str]:
    logger.error("a request failed: this is a bug", exc_info=error)
    return {"error": f"internal error ({type(error).__name__}: {error}); the service goes on"}


async def _read_batch(request: Request, model: ServedModel, limit: int, max_rows: int) -> Batch:
    """The request's inputs, checked: its content type, size and body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    wanted = "multipart/form-data" if model.kind == "image" else "application/json"
    if kind != wanted:
        how = (
            "image files as multipart/form-data, one part per file named `files` (curl -F "
            "files=@photo.png)"
            if model.kind == "image"
            else 'JSON: Content-Type: application/json, {"rows": [{...}, ...]}'
        )
        raise RequestRefused(415, f"Content-Type {kind or 'none'}: this model takes {how}")
    body = await _body(request, limit)
    if model.kind != "image":
        rows = json_rows(body, max_rows)
        return await asyncio.to_thread(model.from_rows, rows)  # pandera, tokenizer: off the loop
    files = await _files(request, body, max_rows)
    return await asyncio.to_thread(model.from_files, files)


async def _body(request: Request, limit: int) -> bytes:
    """The body, or 413 once it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > limit
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                too_large = True
            if too_large:
                if size > DRAIN_FACTOR * limit:
                    break
                continue
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestRefused(
            400, "the client closed the connection before the body's end"
        ) from None
    if too_large:
        raise RequestRefused(
            413, f"the body is larger than max_body_mb={limit / 2**20:g} MB: send fewer rows"
        )
    return b"".join(chunks)


async def _files(request: Request, body: bytes, max_rows: int) -> list[tuple[str, bytes]]:
    """The uploaded files of a multipart body already read: ``(filename, content)`` each."""

    async def stream():
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=float("inf"), max_fields=100)
    try:
        form = await parser.parse()
    except Exception as error:  # python-multipart's and Starlette's errors: a malformed body
        raise RequestRefused(400, f"the multipart body cannot be read ({error})") from None
    try:
        files: list[tuple[str, bytes]] = []
        for name, part in form.multi_items():
            if name != "files" or isinstance(part, str):
                raise RequestRefused(
                    400, f"unexpected part {name!r}: send each image as a file part named `files`"
                )
            files.append((part.filename or f"file-{len(files)}", await part.read()))
    finally:
        await form.close()
    if not files:
        raise RequestRefused(400, "no file: send each image as a part named `files`")
    if len(files) > max_rows:
        raise RequestRefused(
            413, f"{len(files)} files in one request, more than max_rows={max_rows}: split it"
        )
    return files


def _record(log: RequestLog, model: ServedModel, status: int, started: float, batch, answers):
    """One request's summary for the monitoring log; a failure here never fails the request."""
    latency_ms = (time.perf_counter() - started) * 1000.0
    try:
        if status == 200 and batch is not None and answers is not None:
            values = monitored_values(model.metadata, batch.inputs, batch.texts)
            predictions = model.task.columns(answers)["prediction"]
            log.record(
                status=status,
                latency_ms=latency_ms,
                rows=len(batch.inputs),
                values=values,
                predictions=predictions,
            )
        else:
            log.record(status=status, latency_ms=latency_ms)
    except Exception:
        logger.exception("the request log failed to record a request (the answer went out)")
