"""Local online endpoint end to end: azmlinfsrv serving a real score.py and MLflow model behind capc's front end.

One endpoint is deployed for the module (a deploy takes seconds: azmlinfsrv loads the model in every worker);
the tests then go through it as a client would, over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from capc import serve
from capc.errors import CapcError
from capc.serve.bench import build_bodies, run_load
from capc.serve.processes import is_ours
from serve_fixtures import BODY_LIMIT, ENDPOINT_NAME as NAME, bank_records, job_dir, registered_model

pytestmark = pytest.mark.slow

COLUMNS = list(bank_records(1)[0])


def post(port: int, body: bytes, headers: dict | None = None, path: str = "/score"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def get(port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def message(reply: bytes) -> str:
    """The text of an error answer: azmlinfsrv says {"message"}, a score.py may say {"message"} or {"error"}."""
    body = json.loads(reply)
    return body.get("message") or body.get("error") or ""


def scored(endpoint, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, _, reply = post(endpoint.port, body, {"Authorization": f"Bearer {endpoint.key}"})
    return status, json.loads(reply)


# ------------------------------------------------------------------------------------------ round trip


def test_deploy_answers_on_loopback_and_show_has_the_contract_fields(endpoint):
    info = serve.show(NAME, endpoint.home)
    data = info.to_dict()
    for field in ("name", "scoring_uri", "swagger_uri", "model", "state", "primary_key"):
        assert data[field], field
    assert data["scoring_uri"] == f"http://127.0.0.1:{endpoint.port}/score"
    assert data["swagger_uri"] == f"http://127.0.0.1:{endpoint.port}/swagger.json"
    assert data["model"] == f"{NAME}:1"
    assert data["state"] == "running"
    assert data["primary_key"] == endpoint.key
    assert [e.name for e in serve.list_endpoints(endpoint.home)] == [NAME]
    assert serve.list_endpoints(endpoint.home)[0].primary_key is None  # list never carries keys


def test_invoke_scores_the_sample_request_with_labels_and_probabilities(endpoint):
    reply = serve.invoke(NAME, home=endpoint.home)
    assert reply.status == 200, reply.text
    body = reply.json()
    assert len(body["result"]) == 2 and set(body["result"]) <= {"yes", "no"}
    for probabilities in body["probabilities"]:
        assert set(probabilities) == {"yes", "no"}
        assert abs(sum(probabilities.values()) - 1) < 1e-6
    assert reply.request_id and reply.headers["x-capc-model"] == f"{NAME}:1"


def test_records_and_azure_input_data_give_the_same_predictions(endpoint):
    records = bank_records(5, skip=100)
    status_a, by_records = scored(endpoint, {"data": records})
    input_data = {"columns": COLUMNS[::-1], "data": [[r[c] for c in COLUMNS[::-1]] for r in records]}
    status_b, by_table = scored(endpoint, {"input_data": input_data})
    assert status_a == status_b == 200
    assert by_records == by_table


def test_invoke_with_a_payload(endpoint):
    reply = serve.invoke(NAME, json.dumps({"data": bank_records(3, skip=7)}).encode(), endpoint.home)
    assert reply.status == 200 and len(reply.json()["result"]) == 3


# ------------------------------------------------------------------------------------------ auth


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Bearer ", "Basic abc", "{key}", "Bearer {key}x"])
def test_missing_or_wrong_key_is_401(endpoint, header):
    headers = {} if header is None else {"Authorization": header.format(key=endpoint.key)}
    status, reply_headers, body = post(endpoint.port, json.dumps({"data": bank_records(1)}).encode(), headers)
    assert status == 401
    assert "Bearer" in message(body)
    assert reply_headers["www-authenticate"].startswith("Bearer")


def test_secondary_key_also_works(endpoint):
    secondary = serve.keys(NAME, endpoint.home)["secondaryKey"]
    assert secondary != endpoint.key
    status, _, _ = post(endpoint.port, json.dumps({"data": bank_records(1)}).encode(), {"Authorization": f"Bearer {secondary}"})
    assert status == 200


def test_keys_are_owner_only(endpoint):
    folder = endpoint.home / "endpoints" / NAME
    assert stat.S_IMODE(os.stat(folder / "keys.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder / "control.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b'{"data": [', 400, ["JSON"]),
        (b"", 400, ["empty"]),
        (b"[1, 2]", 400, ["dictionary"]),
        (json.dumps({"data": []}).encode(), 400, ["empty"]),
        (json.dumps({"data": [{"age": 30}]}).encode(), 400, ["job"]),
        (json.dumps({"data": [{**bank_records(1)[0], "age": "thirty"}]}).encode(), 400, ["age", "number"]),
        (json.dumps({"data": [{**bank_records(1)[0], "duration": [1]}]}).encode(), 400, ["duration"]),
        (json.dumps({"rows": []}).encode(), 400, ["data"]),
        (json.dumps({"data": "not a list"}).encode(), 400, ["list"]),
        (json.dumps({"input_data": {"columns": ["age"], "data": [[30]]}}).encode(), 400, ["job"]),
    ],
    ids=["malformed", "no-body", "not-an-object", "empty-list", "missing-column", "wrong-type-text-for-number",
         "wrong-type-list-for-number", "no-data-key", "data-not-a-list", "input-data-missing-column"],
)
def test_bad_input_is_a_4xx_that_names_the_problem(endpoint, body, status, words):
    got, _, reply = post(endpoint.port, body, {"Authorization": f"Bearer {endpoint.key}"})
    assert got == status, reply
    text = message(reply)
    for word in words:
        assert word in text, text


def test_body_over_the_limit_is_413_before_scoring(endpoint):
    records = bank_records(1) * (BODY_LIMIT // 400 + 50)
    body = json.dumps({"data": records}).encode()
    assert len(body) > BODY_LIMIT
    status, _, reply = post(endpoint.port, body, {"Authorization": f"Bearer {endpoint.key}"})
    assert status == 413
    assert f"{BODY_LIMIT:,}" in message(reply)


def test_wrong_content_type_is_not_a_500(endpoint):
    status, _, _ = post(endpoint.port, b"age=1", {"Authorization": f"Bearer {endpoint.key}", "Content-Type": "text/plain"})
    assert status == 415


# ------------------------------------------------------------------------------------------ swagger, logs


def test_swagger_document_lists_the_dataset_columns(endpoint):
    status, body = get(endpoint.port, "/swagger.json?version=3")
    assert status == 200
    document = json.loads(body)
    service_input = document["components"]["schemas"]["ServiceInput"]
    record = service_input["properties"]["data"]["items"]
    assert set(record["properties"]) == set(COLUMNS)
    assert document["components"]["securitySchemes"]["Bearer"]["name"] == "Authorization"
    assert "/score" in document["paths"]
    status, body = get(endpoint.port, "/swagger.json")  # version 2 by default, as azmlinfsrv answers
    assert status == 200 and json.loads(body)["swagger"] == "2.0"


def test_swagger_ui_page_and_its_files_are_served_locally(endpoint):
    status, page = get(endpoint.port, "/docs/")
    assert status == 200 and b"swagger-ui-bundle.js" in page and b"/docs/openapi.json" in page
    status, body = get(endpoint.port, "/docs/openapi.json")
    document = json.loads(body)
    assert status == 200 and document["openapi"].startswith("3.")
    assert document["components"]["schemas"]["ServiceInput"]["example"] == json.loads((endpoint.job / "sample_request.json").read_text())
    status, script = get(endpoint.port, "/docs/swagger-ui-bundle.js")
    assert status == 200 and len(script) > 100_000
    assert get(endpoint.port, "/docs/..%2Fkeys.json")[0] == 404


def test_request_log_has_one_line_per_request_without_payload_or_key(endpoint):
    marker = "zz-unique-marker-job"
    record = {**bank_records(1)[0], "job": marker}
    status, _, reply_headers_body = post(endpoint.port, json.dumps({"data": [record]}).encode(),
                                         {"Authorization": f"Bearer {endpoint.key}", "x-request-id": "test-request-42"})
    assert status == 200
    records = list(serve.logs(NAME, endpoint.home))
    mine = [r for r in records if r["request_id"] == "test-request-42"]
    assert len(mine) == 1
    entry = mine[0]
    assert entry["status"] == 200 and entry["path"] == "/score" and entry["latency_ms"] > 0
    assert entry["model"] == f"{NAME}:1" and entry["time"].endswith("Z")
    assert any(r["status"] == 401 for r in records)
    assert "test-request-42" in serve.format_log_record(entry)
    folder = endpoint.home / "endpoints" / NAME
    keys = serve.keys(NAME, endpoint.home)
    for log in [folder / "requests.log", folder / "proxy.log", *folder.glob("gen-*/server.log")]:
        text = log.read_text()
        assert marker not in text, log
        assert keys["primaryKey"] not in text and keys["secondaryKey"] not in text, log


def test_logs_follow_yields_new_requests(endpoint):
    seen = []
    follower = serve.logs(NAME, endpoint.home, follow=True, tail_lines=0, poll_s=0.05)
    thread = threading.Thread(target=lambda: seen.append(next(follower)), daemon=True)
    thread.start()
    time.sleep(0.3)
    post(endpoint.port, b"{}", {"Authorization": "Bearer nope", "x-request-id": "follow-me"})
    thread.join(timeout=10)
    assert seen and seen[0]["request_id"] == "follow-me" and seen[0]["status"] == 401


def test_health_needs_no_key(endpoint):
    status, body = get(endpoint.port, "/")
    assert status == 200 and body == b"Healthy"


# ------------------------------------------------------------------------------------------ load, redeploy


def test_bench_sends_real_rows_and_counts_no_errors(endpoint):
    result = serve.bench(NAME, bank_records(50), requests=60, concurrency=4, rows_per_request=2, home=endpoint.home)
    assert result.complete == 60 and result.errors == 0, result.report()
    assert result.latency_ms["p50"] <= result.latency_ms["p99"] <= result.latency_ms["max"]
    assert "Requests per second" in result.report()


def test_bench_with_the_rows_capc_bench_sends(endpoint):
    if endpoint.source == "fixture":
        pytest.skip("the fixture job folder has no data/MLTable")
    from capc.jobfolder.data import request_rows

    rows = request_rows(endpoint.job, limit=50)
    assert len(rows) == 50 and list(rows[0]) == COLUMNS
    result = serve.bench(NAME, rows, requests=20, concurrency=2, rows_per_request=3, home=endpoint.home)
    assert result.errors == 0, result.report()


def test_redeploy_under_load_switches_model_without_a_failed_request(endpoint):
    home = endpoint.home
    before = serve.show(NAME, home)
    model_v2 = registered_model(home, NAME, 2, rows=400, skip=1000, classifier="tree")
    done = threading.Event()
    outcome = {}

    def load():
        bodies = build_bodies(bank_records(40), 100_000, 1)
        outcome["result"] = run_load(
            endpoint.port, "/score", {"Authorization": f"Bearer {endpoint.key}"}, bodies, 100_000, 4,
            max_duration_s=300, keep_timeline=True, until=done.is_set,
        )

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(1.0)
        after = serve.deploy(NAME, model_v2, endpoint.job, home=home, max_body_bytes=BODY_LIMIT)
        time.sleep(1.0)  # traffic on the new model too
    finally:
        done.set()
        thread.join(timeout=120)
    result = outcome["result"]
    assert result.complete > 0 and result.errors == 0, result.report()
    assert after.port == before.port and after.generation == before.generation + 1
    assert after.model == f"{NAME}:2"
    assert not is_ours(before.server_pid, str(home / "endpoints" / NAME) + os.sep)  # old server stopped
    reply = serve.invoke(NAME, home=home)
    assert reply.status == 200 and reply.headers["x-capc-model"] == f"{NAME}:2"
    models = {r["model"] for r in serve.logs(NAME, home)}
    assert {f"{NAME}:1", f"{NAME}:2"} <= models


def test_a_broken_score_py_fails_the_deploy_and_the_endpoint_keeps_serving(endpoint, tmp_path):
    broken = job_dir(tmp_path / "broken")
    (broken / "score.py").write_text((broken / "score.py").read_text().replace(
        "def init():\n    global model\n", "def init():\n    global model\n    raise RuntimeError('model store unreachable')\n"))
    live = serve.show(NAME, endpoint.home)
    with pytest.raises(CapcError) as failure:
        serve.deploy(NAME, Path(live.model_dir), broken, home=endpoint.home, max_body_bytes=BODY_LIMIT, ready_timeout_s=60)
    assert "did not start" in failure.value.message and "model store unreachable" in failure.value.message, failure.value.message
    assert serve.invoke(NAME, home=endpoint.home).status == 200
    assert serve.show(NAME, endpoint.home).generation == live.generation


def test_regenerated_primary_key_replaces_the_old_one(endpoint):
    old = serve.keys(NAME, endpoint.home)
    new = serve.regenerate_key(NAME, "primary", endpoint.home)
    assert new["primaryKey"] != old["primaryKey"] and new["secondaryKey"] == old["secondaryKey"]
    body = json.dumps({"data": bank_records(1)}).encode()
    assert post(endpoint.port, body, {"Authorization": f"Bearer {old['primaryKey']}"})[0] == 401
    assert post(endpoint.port, body, {"Authorization": f"Bearer {new['primaryKey']}"})[0] == 200
    endpoint.key = new["primaryKey"]


def test_redeploy_with_another_port_is_refused(endpoint):
    live = serve.show(NAME, endpoint.home)
    with pytest.raises(CapcError, match="already serves on port"):
        serve.deploy(NAME, Path(live.model_dir), endpoint.job, port=live.port + 1, home=endpoint.home)


def test_deploy_after_a_crash_starts_again_on_the_same_port(endpoint):
    before = serve.show(NAME, endpoint.home)
    os.kill(before.proxy_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while serve.show(NAME, endpoint.home).state != "stopped" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert serve.show(NAME, endpoint.home).state == "stopped"
    with pytest.raises(CapcError, match="not running"):
        serve.invoke(NAME, home=endpoint.home)
    after = serve.deploy(NAME, Path(before.model_dir), endpoint.job, home=endpoint.home, max_body_bytes=BODY_LIMIT)
    assert after.state == "running" and after.port == before.port and after.generation == before.generation + 1
    assert not is_ours(before.server_pid, str(endpoint.home / "endpoints" / NAME) + os.sep)  # the orphan is gone
    assert serve.invoke(NAME, home=endpoint.home).status == 200


def test_delete_stops_everything(endpoint):
    info = serve.show(NAME, endpoint.home)
    marker = str(endpoint.home / "endpoints" / NAME) + os.sep
    serve.delete(NAME, endpoint.home)
    assert not is_ours(info.proxy_pid, marker) and not is_ours(info.server_pid, marker)
    assert not (endpoint.home / "endpoints" / NAME).exists()
    with pytest.raises(CapcError, match="no local endpoint named"):
        serve.invoke(NAME, home=endpoint.home)
    with pytest.raises(OSError):
        get(info.port, "/")
