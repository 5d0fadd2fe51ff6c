"""Backend, local endpoints: the little HTTP/1.1 that the front end and the load generator speak by hand.

Both only talk to loopback servers they know (azmlinfsrv behind the front end, the front end under load), so a
general client buys nothing and costs CPU on every request: on a 2-core machine every tenth of a millisecond
spent here is taken from the model.
"""

from __future__ import annotations

import asyncio

MAX_HEAD = 64 * 1024


class Response:
    __slots__ = ("status", "headers", "body", "keep_alive", "size")

    def __init__(self, status: int, headers: dict, body: bytes, keep_alive: bool, size: int):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body
        self.keep_alive = keep_alive
        self.size = size  # bytes on the wire, head included


def request_bytes(method: str, host: str, port: int, path: str, headers: dict, body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader, head_request: bool = False) -> Response:
    """One response: Content-Length, chunked, or (HTTP/1.0 style) a body that ends when the connection does."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers, keep_alive = parse_head(head)
    if head_request or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            length = int(size_line.split(b";")[0], 16)
            chunk = await reader.readexactly(length + 2)
            if length == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.read()
        keep_alive = False
    return Response(status, headers, body, keep_alive, len(head) + len(body))


def parse_head(head: bytes) -> tuple[int, dict, bool]:
    """(status, lower-case headers, keep-alive) of a response head, its blank line included."""
    if len(head) > MAX_HEAD:
        raise ValueError("response head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value  # a repeated header: one list
    return status, headers, headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"


def parse_response(buffer: bytes | bytearray, eof: bool, head_request: bool = False) -> Response | None:
    """The response at the start of `buffer` as read_response would read it, or None while it needs more bytes;
    `eof`: the server has closed the connection (a truncated response then raises IncompleteReadError)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise ValueError("response head too large")
        return _incomplete(buffer, eof)
    head = bytes(buffer[:end + 4])
    status, headers, keep_alive = parse_head(head)
    start = end + 4
    if head_request or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if len(buffer) - start < length:
            return _incomplete(buffer, eof)
        body = bytes(buffer[start:start + length])
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunked(buffer, start)
        if body is None:
            return _incomplete(buffer, eof)
    elif eof:
        body, keep_alive = bytes(buffer[start:]), False
    else:
        return None
    return Response(status, headers, body, keep_alive, len(head) + len(body))


def _incomplete(buffer, eof: bool) -> None:
    if eof:
        raise asyncio.IncompleteReadError(bytes(buffer), None)
    return None


def _dechunked(buffer, position: int) -> bytes | None:
    """A chunked body from `position` (trailers ignored, as read_response does), or None while it is incomplete."""
    chunks = []
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        length = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        position = line_end + 2 + length + 2
        if len(buffer) < position:
            return None
        if length == 0:
            return b"".join(chunks)
        chunks.append(bytes(buffer[line_end + 2:position - 2]))
