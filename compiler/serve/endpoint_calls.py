"""Backend, local endpoints: calling a running endpoint - one request (`capc invoke`) or a load test (`capc bench`)
through its front end, with its primary key, as a client of the scoring URI would."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.serving import SAMPLE_REQUEST, sample_request_file
from capc.serve.bench import BenchResult, build_bodies, check_bounds, run_load
from capc.serve.endpoints import running_endpoint, scoring_uri
from capc.serve.processes import http_post
from capc.serve.state import EndpointState, read_keys


@dataclass
class InvokeResult:
    status: int
    body: bytes
    headers: dict
    request_id: str | None
    latency_ms: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)


def invoke(name: str, payload: bytes | None = None, home: Path | None = None, timeout_s: float | None = None) -> InvokeResult:
    """POST `payload` (default: the deployment's sample_request.json) to the scoring URI with the primary key."""
    folder, state = running_endpoint(name, home)
    if payload is None:
        payload = _sample_request(folder, state)
    key = read_keys(folder)["primaryKey"]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    try:
        status, reply_headers, body = http_post(
            state.proxy.port, "/score", payload, headers, timeout=timeout_s or state.request_timeout_ms / 1000 + 10
        )
    except OSError as exc:
        raise CapcError(f"endpoint `{name}` did not answer: {exc}", f"see `capc endpoints logs {name}`") from None
    return InvokeResult(status, body, reply_headers, reply_headers.get("x-request-id"), (time.perf_counter() - started) * 1000)


def bench(
    name: str,
    rows: list[dict],
    requests: int = 1000,
    concurrency: int = 4,
    rows_per_request: int = 1,
    home: Path | None = None,
    *,
    max_duration_s: float = 600.0,
    keep_timeline: bool = False,
) -> BenchResult:
    """Load-test endpoint `name` with real rows, `rows_per_request` per POST, like `ab -n requests -c concurrency`."""
    check_bounds(requests, concurrency, rows_per_request)
    folder, state = running_endpoint(name, home)
    key = read_keys(folder)["primaryKey"]
    bodies = build_bodies(rows, requests, rows_per_request)
    return run_load(
        state.proxy.port, "/score", {"Authorization": f"Bearer {key}"}, bodies, requests, concurrency,
        label=scoring_uri(state.proxy.port), rows_per_request=rows_per_request,
        request_timeout_s=state.request_timeout_ms / 1000 + 10, max_duration_s=max_duration_s, keep_timeline=keep_timeline,
    )


def _sample_request(folder: Path, state: EndpointState) -> bytes:
    candidates = [sample_request_file(folder / f"gen-{state.server.generation}" / "code"), sample_request_file(state.job_dir)]
    for path in candidates:
        if path.is_file():
            return path.read_bytes()
    raise CapcError(f"endpoint `{state.name}` has no {SAMPLE_REQUEST}.", "pass the request body with --data FILE")
