"""Backend, local endpoints: the endpoint's front end, the part Azure runs in front of a deployment's container.

One process per endpoint, on 127.0.0.1:<port>, between clients and azmlinfsrv (which has no authentication):
- `Authorization: Bearer <key>` on /score, primary or secondary key; none or a wrong one is 401.
- Bodies over the endpoint's limit are 413 before they are read; a scoring call over request_timeout_ms is 408.
- Every request becomes one JSON line in requests.log (time, status, latency, request id; never the payload
  or the key), the local stand-in for Application Insights' request traces.
- GET / (health), /swagger.json (the schema; no secret in it) and the Swagger UI page at /docs/ need no key.
- Redeploy: `POST /-/capc/switch` (control token) points new requests at a new azmlinfsrv and answers once the
  requests still running on the old one have finished, so deploy can stop it without failing a request.

Run as `python -m capc.serve.proxy ENDPOINT_DIR PORT`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

from aiohttp import web

from capc.jobfolder.serving import sample_request_file
from capc.serve import http1, swagger_ui
from capc.serve.drift import DRIFT_HEADERS, counts_of
from capc.serve.processes import LOOPBACK
from capc.serve.state import REQUEST_LOG, read_control_token, read_keys, read_state

FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "x-request-id", "x-ms-client-request-id", "x-ms-request-id", "traceid")
RETURNED_HEADERS = (
    "content-type", "x-request-id", "x-ms-request-id", "x-ms-client-request-id", "x-ms-run-fn-exec-ms",
    "x-ms-server-version", "x-ms-run-function-failed", "traceid", *DRIFT_HEADERS.values(),
)
LOG_ROTATE_BYTES = 50 * 1024 * 1024
MAX_IDLE_CONNECTIONS = 16
CONTROL_PREFIX = "/-/capc/"


class Upstream:
    """One generation of azmlinfsrv, with the number of requests it is serving right now."""

    def __init__(self, port: int, generation: int, model: str):
        self.port = port
        self.generation = generation
        self.model = model
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.idle_connections: list[socket.socket] = []  # kept-alive, idle, most recent last

    def enter(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    def describe(self) -> dict:
        return {"port": self.port, "generation": self.generation, "model": self.model, "in_flight": self.in_flight}

    async def exchange(self, method: str, path: str, headers: dict, body: bytes) -> http1.Response:
        """One request on a pooled connection (gunicorn's sync workers close theirs; others may keep them).

        Plain non-blocking socket calls, no asyncio streams: azmlinfsrv closes every connection, so a stream's
        transport, protocol, reader and writer were built and torn down per request (a sixth of the front end's CPU).
        """
        loop = asyncio.get_running_loop()
        reused = bool(self.idle_connections)
        sock = self.idle_connections.pop() if reused else None
        try:
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                await loop.sock_connect(sock, (LOOPBACK, self.port))
            await loop.sock_sendall(sock, http1.request_bytes(method, LOOPBACK, self.port, path, headers, body))
            reply = await _receive(loop, sock, head_request=method == "HEAD")
        except (OSError, asyncio.IncompleteReadError):
            if sock is not None:
                sock.close()
            if not reused:
                raise
            # A kept-alive connection the server had closed meanwhile. Sending again is safe: scoring is a pure
            # function of the request, and a fresh connection that fails is not retried.
            return await self.exchange(method, path, headers, body)
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        if reply.keep_alive and len(self.idle_connections) < MAX_IDLE_CONNECTIONS:
            self.idle_connections.append(sock)
        else:
            sock.close()
        return reply

    def close(self) -> None:
        while self.idle_connections:
            self.idle_connections.pop().close()


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, head_request: bool) -> http1.Response:
    """The server's response, read as it comes (http1.parse_response says when it is whole)."""
    buffer = bytearray()
    while True:
        chunk = await loop.sock_recv(sock, 65536)
        buffer += chunk
        reply = http1.parse_response(buffer, eof=not chunk, head_request=head_request)
        if reply is not None:
            return reply


class RequestLog:
    """JSON lines, one write per request (line-buffered, so `capc endpoints logs --follow` sees it at once)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = self._open()
        self.count = 0

    def _open(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", buffering=1, encoding="utf-8")

    def write(self, record: dict) -> None:
        self.handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1
        if self.count % 1000 == 0 and self.path.stat().st_size > LOG_ROTATE_BYTES:
            self.handle.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self.handle = self._open()


class FrontEnd:
    """The endpoint's HTTP face: routes, key check, limits, request log, and the live azmlinfsrv to send to."""

    def __init__(self, folder: Path):
        state = read_state(folder)
        if state is None or state.server is None:
            raise SystemExit(f"no deployed server in {folder}")
        self.folder = folder
        self.name = state.name
        self.max_body = state.max_body_bytes
        self.timeout_s = state.request_timeout_ms / 1000
        self.upstream = Upstream(state.server.port, state.server.generation, state.model)
        self.control_token = read_control_token(folder).encode()
        self.keys: list[bytes] = []
        self.load_keys()
        self.log = RequestLog(folder / REQUEST_LOG)
        self.served = 0
        self.started = time.time()

    def load_keys(self) -> None:
        keys = read_keys(self.folder)
        self.keys = [keys[k].encode() for k in ("primaryKey", "secondaryKey") if keys.get(k)]

    # ------------------------------------------------------------------ app

    def app(self) -> web.Application:
        app = web.Application()  # body size: checked by score() itself, so a redeploy can change the limit
        app.router.add_route("*", "/score", self.score)
        app.router.add_get("/", self.health)
        app.router.add_get("/swagger.json", self.swagger)
        app.router.add_get("/docs", self.docs_redirect)
        app.router.add_get("/docs/", self.docs_page)
        app.router.add_get(swagger_ui.UI_SPEC_PATH, self.docs_spec)
        app.router.add_get("/docs/{file}", self.docs_file)
        app.router.add_get(CONTROL_PREFIX + "status", self.status)
        app.router.add_post(CONTROL_PREFIX + "switch", self.switch)
        app.router.add_post(CONTROL_PREFIX + "reload-keys", self.reload_keys)
        return app

    # ------------------------------------------------------------------ scoring

    async def score(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        upstream_ms = None
        body_size = request.content_length or 0
        if request.method == "OPTIONS":  # CORS preflight carries no credential
            response = await self._forward(request, request_id, b"")
        elif not self._authorized(request.headers.get("Authorization", "")):
            response = _error(401, "missing or invalid key: send `Authorization: Bearer <key>` "
                                   f"(`capc endpoints keys {self.name}` prints the keys)")
            response.headers["WWW-Authenticate"] = 'Bearer realm="capc endpoint"'
        elif request.content_length is not None and request.content_length > self.max_body:
            response = _too_large(request.content_length, self.max_body)
        else:
            body = await self._read_limited(request)
            if body is None:
                response = _too_large(None, self.max_body)
            else:
                body_size = len(body)
                upstream_started = time.perf_counter()
                response = await self._forward(request, request_id, body)
                upstream_ms = (time.perf_counter() - upstream_started) * 1000
        response.headers["x-request-id"] = request_id
        self._log(request, response, request_id, started, upstream_ms, body_size)
        return response

    async def _read_limited(self, request: web.Request) -> bytes | None:
        """The body, or None once it grows past the limit (a chunked body has no Content-Length to check first)."""
        if request.content_length is not None:  # within the limit (score() checked): one read
            try:
                return await request.content.readexactly(request.content_length)
            except asyncio.IncompleteReadError as exc:  # the client stopped sending: what came, as before
                return exc.partial
        chunks, size = [], 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _authorized(self, header: str) -> bool:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            return False
        given = secret.strip().encode()
        # compare_digest against every key, no early exit: timing tells nothing about which part matched
        return any([hmac.compare_digest(given, key) for key in self.keys])

    async def _forward(self, request: web.Request, request_id: str, body: bytes) -> web.Response:
        upstream = self.upstream
        upstream.enter()  # no await between reading self.upstream and counting: a switch sees every request
        headers = {k: v for k in FORWARDED_REQUEST_HEADERS if (v := request.headers.get(k)) is not None}
        headers["x-request-id"] = request_id
        try:
            async with asyncio.timeout(self.timeout_s):  # not wait_for: no task of its own per request
                reply = await upstream.exchange(request.method, request.path_qs, headers, body)
            response = web.Response(status=reply.status, body=reply.body)
            for name in RETURNED_HEADERS:
                if name in reply.headers:
                    response.headers[name] = reply.headers[name]
        except asyncio.TimeoutError:
            response = _error(408, f"scoring took longer than request_timeout_ms={int(self.timeout_s * 1000)}")
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            response = _error(502, f"the model server did not answer: {type(exc).__name__}: {exc}")
        finally:
            upstream.leave()
        response.headers["x-capc-model"] = upstream.model
        return response

    def _log(self, request, response, request_id, started, upstream_ms, body_size) -> None:
        self.served += 1
        now = time.time()
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "upstream_ms": None if upstream_ms is None else round(upstream_ms, 3),
            "bytes_in": body_size,
            "bytes_out": response.content_length or 0,
            "model": response.headers.get("x-capc-model", self.upstream.model),  # the generation that answered
        }
        if "capc_error" in response:
            record["error"] = response["capc_error"]
        elif response.status >= 400:  # the scoring script's own refusal: its reason, as for the front end's
            record["error"] = _message_of(response.body)
        # score.py's input drift, rows per column: logged with the request as {kind: {column: rows}}
        drift = {kind: counts for kind, header in DRIFT_HEADERS.items() if (counts := counts_of(response.headers.get(header)))}
        if drift:
            record["drift"] = drift
        self.log.write(record)

    # ------------------------------------------------------------------ open routes

    async def health(self, request: web.Request) -> web.Response:
        try:
            reply = await asyncio.wait_for(self.upstream.exchange("GET", "/", {}, b""), 5)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            return _error(503, f"the model server is not answering: {type(exc).__name__}")
        return web.Response(status=reply.status, body=reply.body, content_type="text/plain")

    async def swagger(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        response = await self._forward(request, request_id, b"")
        self._log(request, response, request_id, started, None, 0)
        return response

    async def docs_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(swagger_ui.DOCS_PREFIX)

    async def docs_page(self, request: web.Request) -> web.Response:
        return web.Response(body=swagger_ui.page(self.name), content_type="text/html")

    async def docs_spec(self, request: web.Request) -> web.Response:
        """azmlinfsrv's OpenAPI document with the deployment's sample_request.json as the request example.

        Swagger UI would otherwise build its example from every input of run() at once ("data" and "input_data"
        together), a body score.py may rightly refuse; /swagger.json itself stays exactly azmlinfsrv's.
        """
        try:
            reply = await asyncio.wait_for(self.upstream.exchange("GET", swagger_ui.SPEC_URL, {}, b""), 10)
            document = json.loads(reply.body)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            return _error(502, f"the model server gave no OpenAPI document: {type(exc).__name__}: {exc}")
        if reply.status != 200:
            return web.Response(status=reply.status, body=reply.body, content_type="application/json")
        sample = sample_request_file(self.folder / f"gen-{self.upstream.generation}" / "code")
        return web.json_response(swagger_ui.with_example(document, sample))

    async def docs_file(self, request: web.Request) -> web.StreamResponse:
        path = swagger_ui.static_file(request.match_info["file"])
        if path is None:
            return _error(404, "no such file")
        return web.FileResponse(path)

    # ------------------------------------------------------------------ control (deploy only)

    def _controller(self, request: web.Request) -> bool:
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(secret.encode(), self.control_token)

    async def status(self, request: web.Request) -> web.Response:
        if not self._controller(request):
            return _error(401, "control routes need the endpoint's control token")
        return web.json_response({
            "name": self.name, "pid": os.getpid(), "upstream": self.upstream.describe(),
            "served": self.served, "started": self.started,
        })

    async def switch(self, request: web.Request) -> web.Response:
        if not self._controller(request):
            return _error(401, "control routes need the endpoint's control token")
        target = await request.json()
        previous, previous_timeout_s = self.upstream, self.timeout_s
        self.upstream = Upstream(int(target["port"]), int(target["generation"]), str(target["model"]))
        self.max_body = int(target.get("max_body_bytes", self.max_body))
        self.timeout_s = int(target.get("request_timeout_ms", self.timeout_s * 1000)) / 1000
        try:
            await asyncio.wait_for(previous.idle.wait(), timeout=max(self.timeout_s, previous_timeout_s) + 5)
            drained = True
        except asyncio.TimeoutError:
            drained = False
        previous.close()
        return web.json_response({"previous": previous.describe(), "current": self.upstream.describe(), "drained": drained})

    async def reload_keys(self, request: web.Request) -> web.Response:
        if not self._controller(request):
            return _error(401, "control routes need the endpoint's control token")
        self.load_keys()
        return web.json_response({"keys": len(self.keys)})


def _message_of(body) -> str:
    """The reason in an error answer: its "message" (the inference server's shape), else its text, cut short."""
    text = bytes(body or b"").decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    message = data.get("message") if isinstance(data, dict) else None
    text = str(message) if message is not None else text
    return text if len(text) <= 500 else text[:497] + "..."


def _error(status: int, message: str) -> web.Response:
    # The inference server's error shape ({"message": ...}, its ErrorResponse): one shape for every error.
    response = web.json_response({"message": message}, status=status)
    response["capc_error"] = message  # for the request log; a response's mapping is never sent
    return response


def _too_large(size: int | None, limit: int) -> web.Response:
    got = f"{size:,} bytes" if size is not None else "more than that"
    return _error(413, f"request body is {got}; the endpoint accepts at most {limit:,} bytes per request "
                       "(send fewer rows per request)")


def main(argv: list[str]) -> None:
    folder, port = Path(argv[0]), int(argv[1])
    front = FrontEnd(folder)
    print(f"capc endpoint {front.name}: http://{LOOPBACK}:{port}/score -> azmlinfsrv :{front.upstream.port}", flush=True)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(front.app(), host=LOOPBACK, port=port, access_log=None, print=None, shutdown_timeout=front.timeout_s + 5)


if __name__ == "__main__":
    main(sys.argv[1:])
