"""Headless Chromium driven over the Chrome DevTools protocol, for the browser tests (test_serve_browser,
test_report). Debian's chromium package (.ci/run installs it); the tests skip where it is absent. The protocol
is spoken with websocket-client (a test dependency: missing, the tests fail rather than skip), on loopback only,
with a throwaway profile.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,2400", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
# What makes a page fetch from elsewhere, read statically from its HTML (the browser tests also watch the Network
# domain): URL attributes and CSS url()/@import. Text that merely mentions a URL is not a fetch.
FETCHING = re.compile(
    r"""(?:\b(?:src|href|srcset|action|poster|data|background)\s*=\s*["']?\s*(?:https?:)?//)|(?:url\(\s*["']?\s*(?:https?:)?//)|@import""",
    re.I,
)


class DevTools:
    """Just enough of the DevTools protocol: evaluate JavaScript, insert text, take a screenshot. Events that
    arrive while waiting for a reply are kept in `events` (enable a domain to receive its events)."""

    def __init__(self, ws_url: str):
        import websocket

        self.socket = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout_s: float = 30.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def click(self, selector: str, what: str) -> None:
        self.wait_for(f"!!document.querySelector({json.dumps(selector)})", what)
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def type_into(self, selector: str, text: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)  # real input events, so React sees the value

    def close(self) -> None:
        self.socket.close()


@contextmanager
def chromium_page(url: str, profile: Path):
    """Start headless Chromium on `url` with a fresh profile and yield DevTools on its page; stopped after."""
    if not CHROMIUM:
        pytest.skip("chromium is not installed (CI installs Debian's chromium package)")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start its DevTools endpoint (exit status {process.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        try:
            yield tools
        finally:
            tools.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
