"""Backend, local endpoints: the load generator behind `capc bench`, and its ab-style report.

Light on purpose, so that it leaves the 2 cores to the server it measures: one asyncio loop, C keep-alive
connections speaking HTTP/1.1 by hand, request bytes built before the clock starts. It only ever connects to
the loopback address, and every run is bounded in requests and in time.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable

from capc.errors import CapcError
from capc.serve.http1 import read_response, request_bytes
from capc.serve.processes import LOOPBACK

MAX_REQUESTS = 1_000_000
MAX_CONCURRENCY = 256
PERCENTILES = (50, 66, 75, 80, 90, 95, 98, 99)  # the rows of ab's "Percentage of the requests served within"


@dataclass
class BenchResult:
    endpoint: str
    requests: int
    concurrency: int
    rows_per_request: int
    complete: int  # requests that got an HTTP answer
    failed: int  # transport errors and timeouts (ab's "Failed requests")
    non_2xx: int
    status_counts: dict
    duration_s: float
    requests_per_s: float
    rows_per_s: float
    latency_ms: dict  # mean, p50 ... p99, max
    bytes_sent: int
    bytes_received: int
    errors: int = 0  # failed + non_2xx: the figure a test or a target checks
    first_error: str | None = None
    stopped_early: str | None = None
    timeline: list = field(default_factory=list)  # (seconds since start, status or -1, latency ms) when asked

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("timeline")
        return data

    def report(self) -> str:
        """The figures in the shape `ab` prints them."""
        lat = self.latency_ms
        lines = [
            f"Endpoint:               {self.endpoint}",
            f"Concurrency Level:      {self.concurrency}",
            f"Rows per request:       {self.rows_per_request}",
            f"Time taken for tests:   {self.duration_s:.3f} seconds",
            f"Complete requests:      {self.complete}",
            f"Failed requests:        {self.failed}",
            f"Non-2xx responses:      {self.non_2xx}" + (f"  {dict(sorted(self.status_counts.items()))}" if self.non_2xx else ""),
            f"Total transferred:      {self.bytes_received} bytes",
            f"Requests per second:    {self.requests_per_s:.2f} [#/sec] (mean)",
            f"Rows per second:        {self.rows_per_s:.2f} [#/sec] (mean)",
            f"Time per request:       {lat['mean']:.3f} [ms] (mean)",
            f"Time per request:       {1000 * self.duration_s / max(self.complete, 1):.3f} [ms] (mean, across all concurrent requests)",
            "",
            "Percentage of the requests served within a certain time (ms)",
        ]
        lines += [f"  {p:>3}%  {lat[f'p{p}']:8.2f}" for p in PERCENTILES]
        lines.append(f"  100%  {lat['max']:8.2f} (longest request)")
        if self.first_error:
            lines.append(f"First error: {self.first_error}")
        if self.stopped_early:
            lines.append(f"Stopped early: {self.stopped_early}")
        return "\n".join(lines)


def build_bodies(rows: list[dict], requests: int, rows_per_request: int) -> list[bytes]:
    """Request bodies `{"data": [records]}` cut from real rows, cycling through them when requests need more."""
    if not rows:
        raise CapcError("no rows to send: the benchmark needs rows of the dataset.")
    distinct = min(requests, max(1, math.ceil(len(rows) / rows_per_request)))
    bodies = []
    for i in range(distinct):
        start = (i * rows_per_request) % len(rows)
        chunk = [rows[(start + k) % len(rows)] for k in range(rows_per_request)]
        try:
            bodies.append(json.dumps({"data": chunk}, allow_nan=False).encode())
        except ValueError as exc:  # NaN or infinity: JSON has neither (send null for a missing value)
            raise CapcError(f"rows for the benchmark must be plain JSON values: {exc}.") from None
    return bodies


def check_bounds(requests: int, concurrency: int, rows_per_request: int) -> None:
    if not 1 <= requests <= MAX_REQUESTS:
        raise CapcError(f"--requests must be between 1 and {MAX_REQUESTS:,}, got {requests}.")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise CapcError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}.")
    if rows_per_request < 1:
        raise CapcError(f"--rows must be at least 1, got {rows_per_request}.")


def run_load(
    port: int,
    path: str,
    headers: dict,
    bodies: list[bytes],
    requests: int,
    concurrency: int,
    *,
    label: str = "",
    rows_per_request: int = 1,
    request_timeout_s: float = 30.0,
    max_duration_s: float = 600.0,
    keep_timeline: bool = False,
    until: Callable[[], bool] | None = None,
) -> BenchResult:
    """Send `requests` POSTs (bodies in turn) over `concurrency` keep-alive connections to 127.0.0.1:port.

    `until`, when given, is asked before each request and ends the run early once it returns True.
    """
    check_bounds(requests, concurrency, rows_per_request)
    headers = {"Content-Type": "application/json", **headers}
    payloads = [request_bytes("POST", LOOPBACK, port, path, headers, body) for body in bodies]
    load = _Load(port, payloads, requests, request_timeout_s, max_duration_s, keep_timeline, until)
    started = time.perf_counter()
    asyncio.run(load.run(min(concurrency, requests)))
    duration = time.perf_counter() - started
    latencies = sorted(load.latencies)
    complete = len(latencies)
    non_2xx = sum(n for status, n in load.statuses.items() if not 200 <= status < 300)
    return BenchResult(
        endpoint=label or f"http://{LOOPBACK}:{port}{path}",
        requests=requests,
        concurrency=concurrency,
        rows_per_request=rows_per_request,
        complete=complete,
        failed=load.failed,
        non_2xx=non_2xx,
        status_counts={str(k): v for k, v in sorted(load.statuses.items())},
        duration_s=duration,
        requests_per_s=complete / duration if duration else 0.0,
        rows_per_s=complete * rows_per_request / duration if duration else 0.0,
        latency_ms=_summary(latencies),
        bytes_sent=load.bytes_sent,
        bytes_received=load.bytes_received,
        errors=load.failed + non_2xx,
        first_error=load.first_error,
        stopped_early=load.stopped_early,
        timeline=load.timeline,
    )


def _summary(latencies_s: list[float]) -> dict:
    if not latencies_s:
        return {"mean": 0.0, "max": 0.0, **{f"p{p}": 0.0 for p in PERCENTILES}}
    n = len(latencies_s)

    def nearest_rank(p: float) -> float:
        return latencies_s[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] * 1000

    return {"mean": sum(latencies_s) / n * 1000, "max": latencies_s[-1] * 1000, **{f"p{p}": nearest_rank(p) for p in PERCENTILES}}


class _Load:
    def __init__(self, port, payloads, requests, request_timeout_s, max_duration_s, keep_timeline, until):
        self.port = port
        self.payloads = payloads
        self.requests = requests
        self.request_timeout_s = request_timeout_s
        self.max_duration_s = max_duration_s
        self.keep_timeline = keep_timeline
        self.until = until
        self.next_index = 0
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.failed = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.first_error: str | None = None
        self.stopped_early: str | None = None
        self.timeline: list = []
        self.t0 = 0.0

    async def run(self, concurrency: int) -> None:
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + self.max_duration_s
        await asyncio.gather(*(self._client() for _ in range(concurrency)))

    def _take(self) -> int | None:
        if self.next_index >= self.requests:
            return None
        if time.perf_counter() > self.deadline:
            self.stopped_early = f"time limit of {self.max_duration_s:.0f} s reached"
            return None
        if self.until is not None and self.until():
            self.stopped_early = self.stopped_early or "stopped by the caller"
            return None
        i = self.next_index
        self.next_index += 1
        return i

    async def _client(self) -> None:
        reader = writer = None
        while (i := self._take()) is not None:
            payload = self.payloads[i % len(self.payloads)]
            start = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, self.port), self.request_timeout_s)
                writer.write(payload)
                reply = await asyncio.wait_for(read_response(reader), self.request_timeout_s)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                self.failed += 1
                self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
                if self.keep_timeline:
                    self.timeline.append((start - self.t0, -1, (time.perf_counter() - start) * 1000))
                writer = _close(writer)
                continue
            elapsed = time.perf_counter() - start
            self.latencies.append(elapsed)
            self.statuses[reply.status] += 1
            self.bytes_sent += len(payload)
            self.bytes_received += reply.size
            if self.keep_timeline:
                self.timeline.append((start - self.t0, reply.status, elapsed * 1000))
            if not 200 <= reply.status < 300 and self.first_error is None:
                self.first_error = f"HTTP {reply.status}: {reply.body[:200].decode(errors='replace')}"
            if not reply.keep_alive:
                writer = _close(writer)
        _close(writer)


def _close(writer):
    if writer is not None:
        writer.close()
    return None
