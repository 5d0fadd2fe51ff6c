"""Backend, local endpoints: an endpoint's logs - the front end's request log (`capc endpoints logs`) and azmlinfsrv's
own output (`--server`), read or followed as they grow."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

from capc.serve.endpoints import existing_endpoint
from capc.serve.state import REQUEST_LOG, SERVER_LOG


def logs(name: str, home: Path | None = None, follow: bool = False, tail_lines: int | None = None,
         poll_s: float = 0.2) -> Iterator[dict]:
    """Request log records (oldest first); with `follow`, keeps yielding new ones until the endpoint is deleted."""
    folder, _ = existing_endpoint(name, home)
    path = folder / REQUEST_LOG
    for line in _follow_lines(path, follow, tail_lines, poll_s):
        try:
            yield json.loads(line)
        except ValueError:
            continue  # a line cut by a crash


def server_logs(name: str, home: Path | None = None, follow: bool = False, tail_lines: int | None = None,
                poll_s: float = 0.2) -> Iterator[str]:
    """azmlinfsrv's own output (startup, score.py's prints and tracebacks) for the live generation."""
    folder, state = existing_endpoint(name, home)
    generation = state.server.generation if state.server else 1
    yield from _follow_lines(folder / f"gen-{generation}" / SERVER_LOG, follow, tail_lines, poll_s)


def format_log_record(record: dict) -> str:
    """One request as a line: time status latency method path request-id model [drift] [error]; drift as
    `unknown_columns=id:3 unseen_categories=job:2,month:1` (rows per column), so it greps per column."""
    text = (f"{record.get('time', '-')} {record.get('status', '-')} {record.get('latency_ms', 0):8.2f} ms "
            f"{record.get('method', '-')} {record.get('path', '-')} {record.get('request_id', '-')} {record.get('model', '-')}")
    for kind, counts in sorted((record.get("drift") or {}).items()):
        if isinstance(counts, dict):
            text += f" {kind}=" + ",".join(f"{column}:{rows}" for column, rows in sorted(counts.items()))
    return f"{text} {record['error']}" if record.get("error") else text


def _follow_lines(path: Path, follow: bool, tail_lines: int | None, poll_s: float) -> Iterator[str]:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    if tail_lines is not None:
        lines = lines[-tail_lines:] if tail_lines else []
    yield from lines
    if not follow:
        return
    position = path.stat().st_size if path.exists() else 0
    inode = path.stat().st_ino if path.exists() else None
    pending = b""
    while path.parent.exists():
        try:
            stat = path.stat()
        except FileNotFoundError:
            time.sleep(poll_s)
            continue
        if stat.st_ino != inode or stat.st_size < position:  # rotated or truncated: start the new file
            inode, position, pending = stat.st_ino, 0, b""
        if stat.st_size > position:
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            position += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.decode("utf-8", errors="replace")
        else:
            time.sleep(poll_s)
