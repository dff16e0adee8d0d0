"""``serve(cfg)``: the service under uvicorn, until SIGTERM or SIGINT (Ctrl-C).

The socket is bound here, before uvicorn starts, so that a port in use is a config error (exit
2) and ``port=0`` (any free port) can be told: the log says the URL with the real port. A
signal ends the service gracefully: requests in flight are answered, the batcher stops and the
monitoring log writes its last window; then the command exits 0, the normal end of a service.
"""

import asyncio
import contextlib
import gc
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from omegaconf import DictConfig

from ..errors import CheckpointError, ConfigError
from .app import create_app


def serve(cfg: DictConfig) -> None:
    path = Path(str(cfg.model_path))
    if not path.is_file():
        package = __name__.split(".")[0]
        raise CheckpointError(
            f"model_path={path} does not exist: export a checkpoint first with `make export` "
            f"(python -m {package}.export ckpt_path=... output={path}), or run the whole "
            "pipeline with `make repro`, which writes outputs/pipeline/model.pt2; or pass "
            "model_path=<an exported .pt2 or .onnx file>."
        )
    try:
        app = create_app(
            path,
            max_batch_size=cfg.max_batch_size,
            max_wait_ms=cfg.max_wait_ms,
            max_rows=cfg.max_rows,
            max_body_mb=cfg.max_body_mb,
            log_path=cfg.monitoring.log,
            every_s=cfg.monitoring.every_s,
            every_requests=cfg.monitoring.every_requests,
        )
    except (ConfigError, CheckpointError):
        raise
    except Exception as error:  # torch.export's and onnxruntime's own errors for a bad file
        raise CheckpointError(
            f"model_path={path} cannot be loaded as an exported model ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:300]}): export it again (`make export`)."
        ) from None
    # What is loaded now (the libraries, the program) lives as long as the service: out of the
    # garbage collector's way, whose full passes would walk it again and again, and for seconds
    # when the process exits.
    gc.collect()
    gc.freeze()
    sock = _bound_socket(str(cfg.host), int(cfg.port))
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=30)
    asyncio.run(_serve(_Server(config), sock, url, path))


async def _serve(server: uvicorn.Server, sock: socket.socket, url: str, path: Path) -> None:
    running = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not running.done():
        await asyncio.sleep(0.02)
    if server.started:
        # One line that says the real port (port=0 asks for any free one).
        print(
            f"serving {path} on {url} (POST /predict, GET /health, GET /metadata); stop "
            "with Ctrl-C or SIGTERM",
            flush=True,
        )
    await running
    print(f"stopped serving {path}", flush=True)


def _bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: any free port), or a ``ConfigError``."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise ConfigError(f"host={host}: not an address this machine knows ({error}).") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror or error}): another service may "
            "hold the port; choose another with port=... (port=0: any free port)."
        ) from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, whose signals end the process with exit code 0 once it has shut down.

    uvicorn raises a SIGTERM or SIGINT it caught again after its graceful shutdown (the process
    then dies by the signal, or with KeyboardInterrupt); for a service, that signal is its
    normal end.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()
