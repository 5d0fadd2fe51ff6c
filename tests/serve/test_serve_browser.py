"""The endpoint's Swagger UI page in headless Chromium, driven as a person would use it: the page loads, lists
/score, the Authorize dialog takes `Bearer <key>`, and "Try it out" -> Execute returns a prediction.

Chromium is Debian's package (.ci/run installs it); the test is skipped where it is absent. The browser is
driven over the Chrome DevTools protocol by tests/devtools.py, on loopback only, with a throwaway profile.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools import chromium_page

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path, endpoint):
    with chromium_page(endpoint.info.docs_uri, tmp_path / "profile") as tools:
        yield tools


def test_swagger_ui_lists_score_and_try_it_out_returns_a_prediction(browser, endpoint, tmp_path):
    key = endpoint.key
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
