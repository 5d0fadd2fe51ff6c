"""The endpoint's front end (serve/proxy.py) as its own process, in front of small loopback HTTP servers that
stand in for azmlinfsrv: key checks, body limit, request log, keep-alive reuse, and the switch on redeploy that
waits for the old server's requests before answering."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from capc.serve import state
from capc.serve.processes import free_port, http_get

LIMIT = 10_000


def upstream(name: str, keep_alive: bool):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        connections: set = set()

        def do_GET(self):
            self._answer(b"Healthy", "text/plain")

        def do_POST(self):
            Handler.connections.add(self.client_address)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(float(parse_qs(urlparse(self.path).query).get("delay", ["0"])[0]))
            seen = {"server": name, "bytes": len(body), "authorization": self.headers.get("Authorization"),
                    "request_id": self.headers.get("x-request-id")}
            self._answer(json.dumps(seen).encode(), "application/json")

        def _answer(self, payload: bytes, kind: str):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-ms-run-fn-exec-ms", "0.1")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, Handler


@pytest.fixture
def front_end(tmp_path):
    servers = {name: upstream(name, keep_alive=(name == "a")) for name in ("a", "b")}
    folder = tmp_path / "endpoints" / "bank"
    with state.locked(folder):
        state.ensure_secrets(folder)
    now = "2026-01-01T00:00:00Z"
    state.write_state(folder, state.EndpointState(
        name="bank", model="bank:1", model_dir="/m", job_dir="/j", proxy=None,
        server=state.Process(0, servers["a"][0].server_address[1], 1), worker_count=1, request_timeout_ms=3000,
        max_body_bytes=LIMIT, created=now, updated=now,
    ))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "capc.serve.proxy", str(folder) + os.sep, str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    control = {"Authorization": f"Bearer {state.read_control_token(folder)}"}
    deadline = time.monotonic() + 30
    while True:
        try:
            if http_get(port, "/-/capc/status", control)[0] == 200:
                break
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "front end did not start"
        time.sleep(0.05)
    try:
        yield {"port": port, "folder": folder, "key": state.read_keys(folder)["primaryKey"], "control": control,
               "servers": servers}
    finally:
        process.terminate()
        process.wait(timeout=15)
        for server, _ in servers.values():
            server.shutdown()
            server.server_close()


def call(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def test_key_is_checked_and_never_forwarded(front_end):
    port, key = front_end["port"], front_end["key"]
    assert call(port, "POST", "/score", b"{}")[0] == 401
    assert call(port, "POST", "/score", b"{}", {"Authorization": "Bearer " + key[:-1]})[0] == 401
    status, headers, body = call(port, "POST", "/score", b"{}", {"Authorization": "bearer " + key, "x-request-id": "r-1"})
    assert status == 200
    seen = json.loads(body)
    assert seen["server"] == "a" and seen["authorization"] is None and seen["request_id"] == "r-1"
    assert headers["x-request-id"] == "r-1" and headers["x-capc-model"] == "bank:1" and headers["x-ms-run-fn-exec-ms"] == "0.1"


def test_body_limit_with_and_without_content_length(front_end):
    port, auth = front_end["port"], {"Authorization": "Bearer " + front_end["key"]}
    assert call(port, "POST", "/score", b"x" * LIMIT, auth)[0] == 200
    status, _, body = call(port, "POST", "/score", b"x" * (LIMIT + 1), auth)
    assert status == 413 and "10,000" in json.loads(body)["message"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", "/score")
        conn.putheader("Authorization", auth["Authorization"])
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for _ in range(3):
            chunk = b"y" * 6000
            conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        conn.send(b"0\r\n\r\n")
        assert conn.getresponse().status == 413
    finally:
        conn.close()


def test_connections_to_a_keep_alive_server_are_reused(front_end):
    port, auth = front_end["port"], {"Authorization": "Bearer " + front_end["key"]}
    for _ in range(20):
        assert call(port, "POST", "/score", b"{}", auth)[0] == 200
    assert len(front_end["servers"]["a"][1].connections) <= 2


def test_request_log_lines(front_end):
    port = front_end["port"]
    call(port, "POST", "/score", b"{}", {"x-request-id": "nokey"})
    call(port, "POST", "/score", b'{"secret": "payload"}', {"Authorization": "Bearer " + front_end["key"], "x-request-id": "ok"})
    lines = (front_end["folder"] / "requests.log").read_text().splitlines()
    records = {r["request_id"]: r for r in map(json.loads, lines)}
    assert records["nokey"]["status"] == 401 and "Bearer" in records["nokey"]["error"]
    assert records["ok"]["status"] == 200 and records["ok"]["bytes_in"] == len(b'{"secret": "payload"}')
    assert "payload" not in "\n".join(lines) and front_end["key"] not in "\n".join(lines)


def test_switch_waits_for_the_old_servers_requests(front_end):
    port, auth = front_end["port"], {"Authorization": "Bearer " + front_end["key"]}
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(r=call(port, "POST", "/score?delay=1.0", b"{}", auth)))
    thread.start()
    time.sleep(0.3)
    target = {"port": front_end["servers"]["b"][0].server_address[1], "generation": 2, "model": "bank:2"}
    started = time.monotonic()
    status, _, body = call(port, "POST", "/-/capc/switch", json.dumps(target).encode(),
                           {**front_end["control"], "Content-Type": "application/json"})
    waited = time.monotonic() - started
    thread.join()
    assert status == 200 and json.loads(body)["drained"] is True
    assert waited >= 0.5  # answered only after the slow request on server a had finished
    assert slow["r"][0] == 200 and json.loads(slow["r"][2])["server"] == "a"
    status, headers, body = call(port, "POST", "/score", b"{}", auth)
    assert json.loads(body)["server"] == "b" and headers["x-capc-model"] == "bank:2"


def test_control_routes_need_the_control_token(front_end):
    port = front_end["port"]
    assert call(port, "GET", "/-/capc/status")[0] == 401
    assert call(port, "GET", "/-/capc/status", headers={"Authorization": "Bearer " + front_end["key"]})[0] == 401
    assert call(port, "POST", "/-/capc/switch", b'{"port": 1, "generation": 9, "model": "x"}')[0] == 401


def test_health_and_unknown_paths(front_end):
    port = front_end["port"]
    assert call(port, "GET", "/")[:1] == (200,)
    assert call(port, "GET", "/nothing-here")[0] == 404


def test_a_score_call_over_the_request_timeout_is_408_and_logged(front_end):
    port, auth = front_end["port"], {"Authorization": "Bearer " + front_end["key"]}
    started = time.monotonic()
    status, headers, body = call(port, "POST", "/score?delay=3.6", b"{}", {**auth, "x-request-id": "slow"})
    assert status == 408 and time.monotonic() - started < 3.5  # request_timeout_ms=3000, not the server's 3.6 s
    assert json.loads(body)["message"] == "scoring took longer than request_timeout_ms=3000"
    assert headers["x-request-id"] == "slow"
    assert call(port, "POST", "/score", b"{}", auth)[0] == 200  # the next request is served as ever
    records = {r["request_id"]: r for r in map(json.loads, (front_end["folder"] / "requests.log").read_text().splitlines())}
    assert records["slow"]["status"] == 408 and "request_timeout_ms" in records["slow"]["error"]


# ------------------------------------------------------------------ http1: a response read from a growing buffer

RESPONSES = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": 1234}",
    "close": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nX-A: 1\r\nX-A: 2\r\n\r\nok",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n",
    "until eof": b"HTTP/1.0 500 INTERNAL SERVER ERROR\r\nContent-Type: text/plain\r\n\r\nbody until the end",
    "no body": b"HTTP/1.1 204 No Content\r\n\r\n",
}


def _read_from_stream(data: bytes):
    import asyncio

    from capc.serve import http1

    async def read():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await http1.read_response(reader)

    return asyncio.run(read())


@pytest.mark.parametrize("kind", list(RESPONSES))
def test_a_response_parsed_from_a_buffer_reads_as_from_a_stream(kind):
    from capc.serve import http1

    data = RESPONSES[kind]
    expected = _read_from_stream(data)
    for cut in range(len(data)):  # every way it can arrive in two parts: the first is never taken as the whole
        assert http1.parse_response(data[:cut], eof=False) is None or (kind == "no body" and cut == len(data))
    got = http1.parse_response(data, eof=kind == "until eof")
    fields = ("status", "headers", "body", "keep_alive", "size")
    assert [getattr(got, f) for f in fields] == [getattr(expected, f) for f in fields]
    if kind != "until eof":
        assert http1.parse_response(bytearray(data) + b"HTTP/1.1 200 next", eof=False).body == expected.body
    assert http1.parse_response(RESPONSES["close"], eof=False).headers["x-a"] == "1, 2"


def test_a_response_cut_short_by_the_server_is_incomplete():
    import asyncio

    from capc.serve import http1

    for data in (RESPONSES["length"][:-3], RESPONSES["chunked"][:-5], b"HTTP/1.1 200 OK\r\nContent-", b""):
        with pytest.raises(asyncio.IncompleteReadError):
            http1.parse_response(data, eof=True)
    with pytest.raises(ValueError, match="not an HTTP response"):
        http1.parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", eof=False)
    assert http1.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", eof=False, head_request=True).body == b""
