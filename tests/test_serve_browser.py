"""The endpoint's Swagger UI page in headless Chromium, driven as a person would use it: the page loads, lists
/score, the Authorize dialog takes `Bearer <key>`, and "Try it out" -> Execute returns a prediction.

Chromium is Debian's package (.ci/run installs it); the test is skipped where it is absent. The browser is
driven over the Chrome DevTools protocol with websocket-client (a test dependency: missing, the test fails
rather than skips), on loopback only, with a throwaway profile.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from capc import serve
from capc.errors import CapcError
from serve_fixtures import job_for, registered_model

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,2400", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class DevTools:
    """Just enough of the DevTools protocol: evaluate JavaScript, insert text, take a screenshot."""

    def __init__(self, ws_url: str):
        import websocket

        self.socket = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

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


@pytest.fixture(scope="module", params=["fixture", "generated"])
def endpoint(request, tmp_path_factory):
    home = tmp_path_factory.mktemp("capc_home_ui")
    job = job_for(request.param, home / "generated")
    info = serve.deploy("bank", registered_model(home, "bank", 1), job, home=home)
    try:
        yield info, serve.keys("bank", home)["primaryKey"], home
    finally:
        try:
            serve.delete("bank", home)
        except CapcError:
            pass


@pytest.fixture
def browser(tmp_path, endpoint):
    if not CHROMIUM:
        pytest.skip("chromium is not installed (CI installs Debian's chromium package)")
    info, _, _ = endpoint
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", info.docs_uri],
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
        import urllib.request

        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        yield tools
        tools.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_swagger_ui_lists_score_and_try_it_out_returns_a_prediction(browser, endpoint, tmp_path):
    _, key, _ = endpoint
    paths = browser.wait_for(
        "Array.from(document.querySelectorAll('.opblock-summary-path')).map(e => e.textContent.trim()).join(' ')",
        "the operations list",
    )
    assert "/score" in paths.split()

    browser.click(".btn.authorize", "the Authorize button")
    browser.wait_for("!!document.querySelector('.modal-ux input')", "the Authorize dialog")
    browser.type_into(".modal-ux input", f"Bearer {key}")
    browser.click(".modal-ux .auth-btn-wrapper .btn.modal-btn.auth.authorize", "the dialog's Authorize button")
    browser.click(".modal-ux .btn-done, .modal-ux .close-modal", "the dialog's Close button")

    browser.click("#operations-default-RunMLService .opblock-summary-control", "the POST /score operation")
    browser.click("#operations-default-RunMLService .try-out__btn", "Try it out")
    body = browser.wait_for("(document.querySelector('#operations-default-RunMLService textarea.body-param__text') || {}).value",
                            "the example request body")
    assert "age" in json.loads(body)["data"][0]  # the example is the dataset's sample record
    browser.click("#operations-default-RunMLService .execute", "Execute")

    status = browser.wait_for(
        "(document.querySelector('#operations-default-RunMLService .live-responses-table tr.response .response-col_status') || {}).textContent",
        "the response",
    )
    reply = browser.js(
        "document.querySelector('#operations-default-RunMLService .live-responses-table .response-col_description pre').textContent"
    )
    shot = browser.call("Page.captureScreenshot", format="png")["data"]
    Path(tmp_path / "swagger-ui.png").write_bytes(__import__("base64").b64decode(shot))
    assert status.strip() == "200", reply
    prediction = json.loads(reply)
    assert prediction["result"][0] in ("yes", "no")
