"""A bounded load test of the HTTP service on this machine: ``python -m <package>.loadtest``.

Starts the service on a free localhost port (``--model``, the exported model; or tests one
already running, ``--url``, on localhost only), then sends ``POST /predict`` from 1, 8 and 32
concurrent clients (``--clients``): each level stops after ``--requests`` requests or
``--duration`` seconds, whichever comes first. Each client is a thread with its own keep-alive
connection (the standard library's ``http.client``: nothing to install). The requests are the test
split's rows as the source has them (texts as they are; images as their files), so the service
does the work it does in production: schema checks, tokenizing, decoding.

Prints, and writes to ``--output`` as JSON, per level: requests, errors, throughput (requests
and rows per second) and latency p50/p99/max in milliseconds. Latency is measured by the client,
from sending a request to reading the whole answer.

Exit codes: 0 success (errors are counted, not fatal); 1 the service did not start or answer;
2 bad arguments (a remote URL, no test split, a model file that does not exist).
"""

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError, ProjectError, reported

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.loadtest",
        description="Load-test the HTTP service on localhost at several numbers of clients.",
    )
    parser.add_argument("--model", default="outputs/pipeline/model.pt2", help="exported model")
    parser.add_argument("--url", help="a running service on localhost (else one is started)")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels (comma-separated)")
    parser.add_argument("--requests", type=int, default=400, help="requests per level, at most")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per level, at most")
    parser.add_argument("--rows", type=int, default=1, help="rows (texts, images) per request")
    parser.add_argument("--data", default="data/processed", help="the processed data folder")
    parser.add_argument("--output", default="reports/loadtest.json", help="the JSON results")
    args = parser.parse_args(argv)
    with reported("loadtest"):
        levels = [_positive(c, "--clients") for c in args.clients.split(",")]
        for name in ("requests", "rows"):
            _positive(getattr(args, name), f"--{name}")
        if args.duration <= 0:
            raise ConfigError(f"--duration {args.duration}: expected a positive number of seconds")
        with service(args.url, args.model) as url:
            metadata = json.loads(request(url, "GET", "/metadata")[1])
            bodies = list(request_bodies(metadata, Path(args.data), args.rows))
            results = [
                run_level(url, bodies, clients, args.requests, args.duration, args.rows)
                for clients in levels
            ]
        print(table(results))
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"url": url, "levels": results}, indent=2) + "\n")
        print(f"wrote {output}")


def _positive(value: Any, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{name} {value}: expected a positive integer")
    return number


# ---- the service under test ---------------------------------------------------------------------


@contextlib.contextmanager
def service(url: str | None, model: str) -> Iterator[str]:
    """The base URL of the service: ``url`` (localhost only), or one started on a free port."""
    if url:
        host = urllib.parse.urlsplit(url).hostname or ""
        if host not in LOCAL_HOSTS:
            raise ConfigError(
                f"--url {url}: the load test runs against localhost only (127.0.0.1, localhost, "
                "::1); a shared service is not the place for it."
            )
        wait_until_healthy(url.rstrip("/"), None, 10.0)
        yield url.rstrip("/")
        return
    if not Path(model).is_file():
        raise ConfigError(
            f"--model {model} does not exist: `make repro` (its export stage) or `make export` "
            "writes one; or pass --url of a running service."
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        command = [
            sys.executable,
            "-m",
            f"{__package__}.serve",
            f"model_path={model}",
            f"port={port}",
            f"hydra.run.dir={scratch}",
            "monitoring.log=null",  # the load is not traffic to monitor
        ]
        log = Path(scratch) / "serve.log"
        # The service is this very package, installed or not (run from another folder).
        here = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        with log.open("w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(base, process, 60.0, log)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(
    base: str, process: subprocess.Popen | None, timeout: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            said = log.read_text()[-2000:] if log else ""
            raise ProjectError(f"the service exited with code {process.returncode}:\n{said}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if request(base, "GET", "/health")[0] == 200:
                return
        time.sleep(0.2)
    raise ProjectError(f"the service at {base} did not answer /health within {timeout:.0f} s")


def host_port(base: str) -> tuple[str, int | None]:
    """The host and port of a service's base URL (``service``: always names a local host)."""
    parts = urllib.parse.urlsplit(base)
    assert parts.hostname is not None, f"{base} names no host"  # service() refuses those
    return parts.hostname, parts.port


def request(base: str, method: str, path: str, body: tuple[bytes, str] | None = None):
    """``(status, body bytes)`` of one request on a fresh connection."""
    host, port = host_port(base)
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        headers = {"Content-Type": body[1]} if body else {}
        connection.request(method, path, body=body[0] if body else None, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


# ---- the requests --------------------------------------------------------------------------------


def request_bodies(metadata: dict, data: Path, rows: int) -> Iterator[tuple[bytes, str]]:
    """``(body, content type)`` of requests of ``rows`` test rows each, in the service's format."""
    import pandas as pd

    test = data / "test.parquet"
    if not test.is_file():
        raise ConfigError(f"{test} does not exist: run `make prepare` (the requests are test rows)")
    frame = pd.read_parquet(test)
    spec = metadata["input"]
    if "pixel_range" in spec:  # images: the files, uploaded
        root = Path(json.loads((data / "images.json").read_text())["root"])
        files = [root / str(p) for p in frame["path"]]
        for start in range(0, len(files) - rows + 1, rows):
            yield multipart([(f.name, f.read_bytes()) for f in files[start : start + rows]])
        return
    if "columns" in spec:  # tables: the raw source rows of the test split, as a client sends them
        raw = data.parent / "raw" / f"{metadata['data']['name']}.parquet"
        if not raw.is_file():
            raise ConfigError(
                f"{raw} does not exist: run `make prepare` (the requests are its rows)"
            )
        source = pd.read_parquet(raw).set_index("id").loc[frame["id"]].reset_index()
        records = source[["id", *spec["columns"]]].to_dict(orient="records")
    else:  # texts
        records = [{"text": text} for text in frame["text"]]
    for start in range(0, len(records) - rows + 1, rows):
        body = json.dumps({"rows": records[start : start + rows]}).encode()
        yield body, "application/json"


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body with each file as a part named ``files``."""
    boundary = "loadtest-boundary-7f3a9c"
    parts = []
    for name, content in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# ---- one level of load ---------------------------------------------------------------------------


def run_level(
    base: str,
    bodies: list[tuple[bytes, str]],
    clients: int,
    requests: int,
    duration: float,
    rows: int,
) -> dict[str, Any]:
    """``clients`` threads send ``bodies`` in turn until ``requests`` are sent or ``duration``
    seconds have passed; returns the level's figures."""
    if not bodies:
        raise ConfigError(f"the test split has fewer than --rows {rows} rows: nothing to send")
    host, port = host_port(base)
    lock = threading.Lock()
    sent = 0
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + duration

    def client() -> None:
        nonlocal sent
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if sent >= requests:
                        return
                    index, sent = sent, sent + 1
                body, kind = bodies[index % len(bodies)]
                start = time.perf_counter()
                try:
                    connection.request("POST", "/predict", body, {"Content-Type": kind})
                    answer = connection.getresponse()
                    answer.read()
                    outcome = str(answer.status)
                except (OSError, http.client.HTTPException) as error:
                    outcome = type(error).__name__
                    connection.close()  # a new connection for the next request
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    if outcome == "200":
                        latencies.append(elapsed)
                    else:
                        errors[outcome] = errors.get(outcome, 0) + 1
        finally:
            connection.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return summary(clients, latencies, errors, seconds, rows)


def summary(
    clients: int, latencies: list[float], errors: dict[str, int], seconds: float, rows: int
) -> dict[str, Any]:
    import numpy as np

    done = len(latencies)
    ms = np.asarray(latencies) if done else np.zeros(1)
    return {
        "clients": clients,
        "requests": done + sum(errors.values()),
        "errors": errors,
        "seconds": round(seconds, 3),
        "requests_per_s": round(done / seconds, 1) if seconds else 0.0,
        "rows_per_s": round(done * rows / seconds, 1) if seconds else 0.0,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def table(results: list[dict[str, Any]]) -> str:
    header = f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>8} {'rows/s':>8}"
    header += f" {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    lines = [header]
    for r in results:
        lines.append(
            f"{r['clients']:>7} {r['requests']:>8} {sum(r['errors'].values()):>6} "
            f"{r['requests_per_s']:>8} {r['rows_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} "
            f"{r['max_ms']:>8}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
