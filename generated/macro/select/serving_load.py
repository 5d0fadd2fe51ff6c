"""Shared rule: what a candidate model serves under concurrent load through the inference server, and the load budget.

serving_cost measures one call at a time in-process; users meet concurrent requests through the inference server.
This module measures that: Azure's inference server (azmlinfsrv: gunicorn and its Flask app, as `capc deploy` and a
managed online deployment run it) serving the generated score.py with AZUREML_MODEL_DIR at the candidate, with the
worker count `capc deploy` gives it on this machine (deployment.yml's WORKER_COUNT, at least one per core), pinned to
the cores a local endpoint would have here (this process's CPUs), bound to 127.0.0.1 only. `concurrency` keep-alive
clients (one asyncio loop in this process, HTTP/1.1 spoken by hand so the client leaves the cores to the server) send
one-row requests built as sample_request.json is, cycling through rows of the training data. gunicorn's sync workers
close each connection after answering, so a client reconnects as `ab -k` does against azmlinfsrv.

Bounded cost per candidate: the server must answer within READY_SECONDS (its start is what costs most: importing the
scoring stack in each worker), WARM_UP_PER_WORKER untimed requests per worker, then timed requests until
LOAD_REQUESTS are answered or LOAD_SECONDS have passed, whichever comes first. Every figure carries a record of how it
was taken (server, workers, cores, concurrency, requests, seconds) and what measuring it cost.

Like serving_cost it imports nothing from capc (`capc build` copies it to select/serving_load.py for the pipeline's
select step, which runs it on the cluster node): the standard library only, azmlinfsrv in the server's process.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

LOOPBACK = "127.0.0.1"
LOAD_SECONDS = 2.0  # timed requests stop after this ...
LOAD_REQUESTS = 2000  # ... or once this many are answered
WARM_UP_PER_WORKER = 2  # untimed: each worker's first requests pay lazy imports and caches
READY_SECONDS = 90.0  # the server starts (each worker imports the scoring stack) within this, or the candidate fails
REQUEST_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0
METRIC_PREFIX = "serving_load_"  # run metrics: serving_load_requests_per_s, serving_load_p99_ms
# azmlinfsrv as `capc deploy` starts it (capc.serve.inference_server.main), bound to the loopback address only.
WORKER_READY = b"ready for serving traffic"  # azmlinfsrv's line when a worker has run init(): "Worker with pid N ready ..."
SERVER_CODE = (
    "from azureml_inference_server_http import constants; constants.DEFAULT_HOST = '127.0.0.1'\n"
    "from azureml_inference_server_http import amlserver; amlserver.run()\n"
)


class LoadError(Exception):
    """The server did not start or answer; the message says what it said."""


# ---------------------------------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class LoadBudget:
    """deployment.min_requests_per_s and deployment.load.max_p99_ms, at deployment.load.concurrency clients."""

    min_requests_per_s: float | None = None
    max_p99_ms: float | None = None
    concurrency: int = 4

    @property
    def any(self) -> bool:
        return self.min_requests_per_s is not None or self.max_p99_ms is not None

    def describe(self) -> str:
        parts = []
        if self.min_requests_per_s is not None:
            parts.append(f">= {self.min_requests_per_s:g} requests/s")
        if self.max_p99_ms is not None:
            parts.append(f"p99 <= {self.max_p99_ms:g} ms")
        return f"{' and '.join(parts)} at concurrency {self.concurrency}" if parts else "no load budget"

    def reasons(self, figure: LoadFigure) -> list[str]:
        """Why `figure` is outside the budget (empty: within)."""
        out = []
        if figure.errors:
            out.append(f"{figure.errors} of {figure.requests + figure.errors} requests failed under load ({figure.first_error})")
        if self.min_requests_per_s is not None and figure.requests_per_s < self.min_requests_per_s:
            out.append(f"{figure.requests_per_s:,.0f} requests/s < {self.min_requests_per_s:g} at concurrency {figure.concurrency}")
        if self.max_p99_ms is not None and figure.p99_ms > self.max_p99_ms:
            out.append(f"p99 under load {figure.p99_ms:.1f} ms > {self.max_p99_ms:g} ms at concurrency {figure.concurrency}")
        return out


@dataclass(frozen=True)
class LoadFigure:
    """What one candidate served under load, and how that was measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int  # timed requests answered 200
    errors: int  # failed or non-200 timed requests
    seconds: float  # the timed part
    concurrency: int
    workers: int
    cores: int
    cpus: list = field(default_factory=list)  # the CPU numbers the server was pinned to
    server: str = "azmlinfsrv"
    measure_s: float = 0.0  # what measuring cost in all: start, warm-up, timed requests, stop
    first_error: str | None = None

    def metrics(self) -> dict[str, float]:
        """As run metrics: serving_load_requests_per_s, serving_load_p99_ms, ..."""
        keys = ("requests_per_s", "p50_ms", "p99_ms", "requests", "concurrency", "workers", "cores", "measure_s")
        return {METRIC_PREFIX + k: float(getattr(self, k)) for k in keys}

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict | None) -> LoadFigure | None:
        if not data:
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError:
            return None

    def summary(self) -> str:
        return (f"{self.requests_per_s:,.0f} requests/s, p99 {self.p99_ms:.1f} ms (p50 {self.p50_ms:.1f}) at concurrency "
                f"{self.concurrency}")

    def how(self) -> str:
        return (f"{self.server}, {self.workers} worker{'s' if self.workers != 1 else ''} on {self.cores} core"
                f"{'s' if self.cores != 1 else ''}, {self.concurrency} keep-alive clients, {self.requests + self.errors} one-row "
                f"requests in {self.seconds:.1f} s (measured in {self.measure_s:.1f} s)")


# ---------------------------------------------------------------------------------------------- the machine


def usable_cpus() -> list[int]:
    """The CPUs this process may run on: the cores a local endpoint would have here."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no pinning
        return list(range(os.cpu_count() or 1))


def local_worker_count(asked: int, cores: int) -> int:
    """`capc deploy`'s worker count: deployment.yml's WORKER_COUNT, at least one per core (one local endpoint is the
    whole machine; Azure's default of one worker would leave every core but one idle under concurrent load)."""
    return max(int(asked or 1), cores, 1)


@dataclass(frozen=True)
class InstanceEstimate:
    """The throughput expected on the deployment's instance, scaled by cores from a local figure: an estimate."""

    instance_type: str
    vcpus: int | None  # None: a size capc's table does not list
    workers: int  # deployment.yml's WORKER_COUNT: azmlinfsrv's workers there, one core each at most
    measured_cores: int
    requests_per_s: float | None  # the local figure scaled, None without vCPUs

    @property
    def serving_cores(self) -> int | None:
        return None if self.vcpus is None else min(self.vcpus, self.workers)

    @property
    def lower_bound(self) -> bool:
        """The instance serves on at least the cores that measured: a budget met here is a lower bound there."""
        return self.serving_cores is not None and self.serving_cores >= self.measured_cores

    def to_dict(self) -> dict:
        return {**asdict(self), "serving_cores": self.serving_cores, "lower_bound": self.lower_bound, "estimate": True}

    def lines(self) -> list[str]:
        if self.vcpus is None:
            return [f"{self.instance_type}: vCPUs unknown to capc, so no estimate for the instance"]
        out = [f"measured on {self.measured_cores} local core{'s' if self.measured_cores != 1 else ''}; {self.instance_type} has "
               f"{self.vcpus} vCPUs and WORKER_COUNT {self.workers}, so serves on {self.serving_cores}"]
        if self.requests_per_s is not None:
            out.append(f"expected on {self.instance_type}: ~{self.requests_per_s:,.0f} requests/s per instance "
                       f"(estimate, scaled by cores {self.serving_cores}/{self.measured_cores})")
        if self.serving_cores > self.measured_cores:
            out.append("the instance has more cores: a load budget met on this machine is a lower bound there")
        elif self.serving_cores < self.measured_cores:
            out.append(f"the instance serves on fewer cores than measured here: expect less there"
                       + (f" (raise deployment.max_concurrent_requests_per_instance to use its {self.vcpus} vCPUs)"
                          if self.workers < self.vcpus else ""))
        return out


def instance_estimate(requests_per_s: float | None, measured_cores: int, instance_type: str, vcpus: int | None,
                      workers: int) -> InstanceEstimate:
    scaled = None
    if requests_per_s is not None and vcpus:
        scaled = round(requests_per_s * min(vcpus, max(1, workers)) / max(1, measured_cores), 1)
    return InstanceEstimate(instance_type, vcpus, max(1, int(workers or 1)), measured_cores, scaled)


# ---------------------------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class LoadSettings:
    """How to measure: the clients, and the server `capc deploy` would start here."""

    concurrency: int = 4
    workers: int = 1  # deployment.yml's WORKER_COUNT; raised to one per core (local_worker_count)
    cpus: tuple = ()  # empty: this process's CPUs
    environment: dict = field(default_factory=dict)  # deployment.yml's environment_variables
    load_seconds: float = LOAD_SECONDS
    load_requests: int = LOAD_REQUESTS
    ready_seconds: float = READY_SECONDS


def cost_bound_s(settings: LoadSettings) -> float:
    """The most one candidate's measurement may take: the start, the warm-up and the timed requests, each bounded,
    and the stop; the timed part's last requests may each take up to REQUEST_TIMEOUT_S past its deadline."""
    workers = local_worker_count(settings.workers, len(settings.cpus or usable_cpus()))
    warm_up_rounds = math.ceil(workers * WARM_UP_PER_WORKER / max(1, settings.concurrency))
    return settings.ready_seconds + warm_up_rounds * REQUEST_TIMEOUT_S + settings.load_seconds + REQUEST_TIMEOUT_S + 2 * STOP_GRACE_S


def keep_sending(answered: int, started: float, now: float, load_requests: int, load_seconds: float) -> bool:
    """Whether the timed part sends another request: fewer than load_requests answered, within load_seconds."""
    return answered < load_requests and now - started < load_seconds


def measure_load(score_py: str, model_dir: str, records: list[dict], settings: LoadSettings,
                 app_root: str | None = None) -> LoadFigure:
    """What the model in `model_dir` serves through azmlinfsrv and `score_py` under `settings.concurrency` clients.
    Raises LoadError when the server does not start or answer."""
    if not records:
        raise LoadError("no request rows to measure with")
    begun = time.perf_counter()
    cpus = list(settings.cpus) or usable_cpus()
    workers = local_worker_count(settings.workers, len(cpus))
    bodies = [json.dumps({"data": [row]}, allow_nan=False).encode() for row in records[:256]]
    with _Server(score_py, model_dir, app_root or os.path.dirname(os.path.abspath(score_py)), workers, cpus, settings) as port:
        requests = [_request_bytes(port, body) for body in bodies]
        warm = _run(port, requests, settings.concurrency, workers * WARM_UP_PER_WORKER, math.inf)
        if warm.errors:
            raise LoadError(f"the server did not answer the warm-up requests: {warm.first_error}")
        load = _run(port, requests, settings.concurrency, settings.load_requests, settings.load_seconds)
    latencies = sorted(load.latencies)
    seconds = max(load.seconds, 1e-9)
    return LoadFigure(
        requests_per_s=round(len(latencies) / seconds, 1), p50_ms=round(_percentile(latencies, 50), 3),
        p99_ms=round(_percentile(latencies, 99), 3), requests=len(latencies), errors=load.errors, seconds=round(seconds, 3),
        concurrency=settings.concurrency, workers=workers, cores=len(cpus), cpus=cpus, server=_server_name(),
        measure_s=round(time.perf_counter() - begun, 2), first_error=load.first_error,
    )


def _server_name() -> str:
    try:
        from importlib.metadata import version

        return f"azmlinfsrv {version('azureml-inference-server-http')} (gunicorn sync workers)"
    except Exception:  # noqa: BLE001 - only a label
        return "azmlinfsrv"


class _Server:
    """azmlinfsrv started in a session of its own, pinned to `cpus`; yields its port; stopped (the whole group) after."""

    def __init__(self, score_py, model_dir, app_root, workers, cpus, settings: LoadSettings):
        self.workers = workers
        self.argv = [sys.executable, "-c", SERVER_CODE, "--entry_script", os.path.abspath(score_py),
                     "--model_dir", os.path.abspath(model_dir), "--worker_count", str(workers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MLFLOW_"))}
        env.update({str(k): str(v) for k, v in settings.environment.items()})
        env.update({"AML_APP_ROOT": os.path.abspath(app_root), "AZUREML_MODEL_DIR": os.path.abspath(model_dir),
                    "AML_APP_INSIGHTS_ENABLED": "false", "PYTHONUNBUFFERED": "1",
                    "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1")})
        self.env, self.cpus, self.cwd, self.ready_seconds = env, cpus, os.path.abspath(app_root), settings.ready_seconds

    def __enter__(self) -> int:
        self.port = _free_port()
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.argv + ["--port", str(self.port)], env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        if hasattr(os, "sched_setaffinity"):  # before gunicorn forks its workers (it imports first), which inherit it
            try:
                os.sched_setaffinity(self.process.pid, set(self.cpus))
            except OSError:
                pass
        deadline = time.monotonic() + self.ready_seconds
        problem = _wait_healthy(self.process, self.port, self.ready_seconds) or self._wait_all_workers(deadline)
        if problem:
            said = self._log_tail()
            self.__exit__(None, None, None)
            raise LoadError(f"azmlinfsrv did not start: {problem}{said}")
        return self.port

    def _wait_all_workers(self, deadline: float) -> str | None:
        """The first worker answers health checks while the others still import the scoring stack: timing then would
        measure their start, not the serving."""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"it exited with status {self.process.returncode} before every worker was ready"
            if self._log_text().count(WORKER_READY) >= self.workers:
                return None
            time.sleep(0.1)
        return f"not every one of its {self.workers} workers was ready within {self.ready_seconds:.0f} s"

    def _log_text(self) -> bytes:
        """What the server wrote so far; pread leaves the offset it shares with the server's stdout alone."""
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0)

    def _log_tail(self) -> str:
        lines = self._log_text().decode(errors="replace").splitlines()
        raised = [line for line in lines if line and not line[0].isspace() and ("Error" in line or "Exception" in line)]
        return f"; it said: {raised[-1][:300]}" if raised else ""

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(STOP_GRACE_S)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(STOP_GRACE_S)
        self.log.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _wait_healthy(process, port: int, timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"it exited with status {process.returncode} before answering"
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=1.0)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            if response.status == 200 and b"Healthy" in response.read():
                return None
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    return f"it did not answer GET / within {timeout_s:.0f} s"


def _request_bytes(port: int, body: bytes) -> bytes:
    head = (f"POST /score HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nContent-Type: application/json\r\n"
            f"Connection: keep-alive\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


@dataclass
class _Tally:
    latencies: list = field(default_factory=list)  # seconds, answered 200
    errors: int = 0
    first_error: str | None = None
    seconds: float = 0.0

    def fail(self, why: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or why


def _run(port: int, requests: list[bytes], concurrency: int, count: int, seconds: float) -> _Tally:
    tally = _Tally()
    asyncio.run(_clients(port, requests, concurrency, count, seconds, tally))
    return tally


async def _clients(port, requests, concurrency, count, seconds, tally: _Tally) -> None:
    started = time.perf_counter()
    sent = [0]

    def take() -> int | None:
        answered = len(tally.latencies) + tally.errors
        if sent[0] >= count or not keep_sending(answered, started, time.perf_counter(), count, seconds):
            return None
        sent[0] += 1
        return sent[0] - 1

    async def client() -> None:
        reader = writer = None
        while (i := take()) is not None:
            begin = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), REQUEST_TIMEOUT_S)
                writer.write(requests[i % len(requests)])
                status, keep_alive, body = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                tally.fail(f"{type(exc).__name__}: {exc}")
                writer = _close(writer)
                continue
            if status == 200:
                tally.latencies.append(time.perf_counter() - begin)
            else:
                tally.fail(f"HTTP {status}: {body[:200].decode(errors='replace')}")
            if not keep_alive:
                writer = _close(writer)
        _close(writer)

    await asyncio.gather(*(client() for _ in range(max(1, concurrency))))
    tally.seconds = time.perf_counter() - started


async def _read_response(reader) -> tuple[int, bool, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP response: {head[0][:80]!r}")
    headers = {}
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
        keep_alive = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
    else:  # gunicorn without a length: the body ends with the connection
        body, keep_alive = await reader.read(), False
    return int(parts[1]), keep_alive, body


def _close(writer):
    if writer is not None:
        writer.close()
    return None


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile in milliseconds, as load testers report it (0 without values)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1] * 1000
