"""Local endpoints, the parts that need no model server: state files, names, settings, the Swagger UI files,
the load generator against a small loopback HTTP server, log following, and process checks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from capc import serve
from capc.errors import CapcError
from capc.jobfolder.serving import AZURE_REQUEST_TIMEOUT_MS, deployment_settings
from capc.serve import endpoint_logs, endpoints, state, swagger_ui
from capc.serve.bench import build_bodies, check_bounds, run_load
from capc.serve.processes import is_ours, stop
from capc.spec import schema_default


# ------------------------------------------------------------------------------------------ state


def test_secrets_are_owner_only_and_kept_across_deploys(tmp_path):
    folder = tmp_path / "endpoints" / "bank"
    with state.locked(folder):
        state.ensure_secrets(folder)
    keys = state.read_keys(folder)
    assert set(keys) == {"primaryKey", "secondaryKey"} and keys["primaryKey"] != keys["secondaryKey"]
    assert len(keys["primaryKey"]) >= 40
    for name in ("keys.json", "control.json"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    state.ensure_secrets(folder)
    assert state.read_keys(folder) == keys


@pytest.mark.parametrize("name", ["bank", "bankmarketing-endpoint", "a1", "A-b-3"])
def test_valid_endpoint_names(name):
    state.check_name(name)


@pytest.mark.parametrize("name", ["", "b", "-bank", "bank-", "1bank", "bank_marketing", "a" * 33, "../x", "bank/x"])
def test_invalid_endpoint_names_are_refused(name):
    with pytest.raises(CapcError, match="not a valid endpoint name"):
        state.check_name(name)


def test_state_round_trips(tmp_path):
    original = state.EndpointState(
        name="bank", model="bank:3", model_dir="/m", job_dir="/j", proxy=state.Process(10, 8000),
        server=state.Process(11, 9000, 3), worker_count=2, request_timeout_ms=5000, max_body_bytes=1024,
        created="c", updated="u", history=[{"generation": 2, "model": "bank:2", "pid": 9, "replaced": "u"}],
    )
    state.make_private_dir(tmp_path)
    state.write_state(tmp_path, original)
    assert state.read_state(tmp_path) == original
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(CapcError, match="damaged"):
        state.read_state(tmp_path)


# ------------------------------------------------------------------------------------------ deploy inputs


def test_model_reference_comes_from_the_registry_layout(tmp_path):
    assert endpoints._model_ref(tmp_path / "registry" / "bank" / "3" / "model") == "bank:3"
    assert endpoints._model_ref(tmp_path / "outputs" / "model") == "model"


def test_azureml_model_dir_is_the_version_folder_of_a_registered_model(tmp_path):
    version = tmp_path / "registry" / "bank" / "3"
    (version / "model").mkdir(parents=True)
    assert endpoints.azureml_model_dir(version / "model") == version / "model"
    (version / "registration.json").write_text("{}")
    assert endpoints.azureml_model_dir(version / "model") == version
    assert endpoints.azureml_model_dir(tmp_path / "outputs" / "model") == tmp_path / "outputs" / "model"


def test_deployment_settings_are_read_from_deployment_yml(tmp_path):
    # No deployment.yml (or none of its request settings): what Azure does without them; capc's build writes them.
    assert deployment_settings(tmp_path) == {"request_timeout_ms": AZURE_REQUEST_TIMEOUT_MS, "environment": {}}
    (tmp_path / "deployment.yml").write_text(
        "request_settings:\n  request_timeout_ms: 9000\n  max_concurrent_requests_per_instance: 2\n"
        "environment_variables:\n  WORKER_COUNT: 3\n  AZUREML_LOG_LEVEL: WARNING\n"
    )
    assert deployment_settings(tmp_path) == {
        "request_timeout_ms": 9000, "environment": {"WORKER_COUNT": "3", "AZUREML_LOG_LEVEL": "WARNING"},
    }
    (tmp_path / "deployment.yml").write_text("request_settings: [unclosed\n")
    with pytest.raises(CapcError, match="not valid YAML"):
        deployment_settings(tmp_path)


def test_a_spec_without_a_request_timeout_compiles_to_what_azure_would_apply():
    # The spec's default is written into deployment.yml at build time; a local endpoint reads only that file.
    assert schema_default("deployment.request_timeout_ms") == AZURE_REQUEST_TIMEOUT_MS


def test_deploy_refuses_what_cannot_be_served(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    job = tmp_path / "job"
    job.mkdir()
    with pytest.raises(CapcError, match="no MLflow model"):
        serve.deploy("bank", model, job, home=tmp_path)
    (model / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(CapcError, match="no score.py"):
        serve.deploy("bank", model, job, home=tmp_path)
    with pytest.raises(CapcError, match="does not exist"):
        serve.deploy("bank", tmp_path / "nowhere", job, home=tmp_path)
    (job / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    with pytest.raises(CapcError, match="not a valid endpoint name"):
        serve.deploy("bank_1", model, job, home=tmp_path)
    with pytest.raises(CapcError, match="--port"):
        serve.deploy("bank", model, job, port=70000, home=tmp_path)
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(CapcError, match="already in use"):
            serve.deploy("bank", model, job, port=taken.getsockname()[1], home=tmp_path)


@pytest.mark.parametrize("call", [
    lambda home: serve.show("ghost", home),
    lambda home: serve.keys("ghost", home),
    lambda home: serve.invoke("ghost", b"{}", home),
    lambda home: serve.delete("ghost", home),
    lambda home: list(serve.logs("ghost", home)),
    lambda home: serve.bench("ghost", [{"a": 1}], 1, 1, 1, home),
])
def test_unknown_endpoint_is_a_clear_error(tmp_path, call):
    with pytest.raises(CapcError, match="no local endpoint named `ghost`"):
        call(tmp_path)
    assert serve.list_endpoints(tmp_path) == []


# ------------------------------------------------------------------------------------------ swagger ui


def test_swagger_ui_files_come_from_the_bundle_and_nothing_else():
    assert swagger_ui.static_file("swagger-ui-bundle.js").stat().st_size > 100_000
    assert swagger_ui.static_file("swagger-ui.css") is not None
    for name in ("../__init__.py", ".hidden", "vendor/x.js", "missing.js", "..\\x"):
        assert swagger_ui.static_file(name) is None
    page = swagger_ui.page("<bank>").decode()
    assert "&lt;bank&gt;" in page and "<bank>" not in page
    assert '"/docs/openapi.json"' in page and "http" not in page.replace("charset", "")  # no CDN


def test_ui_document_takes_the_sample_request_as_example(tmp_path):
    document = {"components": {"schemas": {"ServiceInput": {"type": "object", "properties": {"data": {}, "input_data": {}}}}}}
    assert swagger_ui.with_example(json.loads(json.dumps(document)), tmp_path / "none.json") == document
    (tmp_path / "sample_request.json").write_text('{"data": [{"age": 30}]}')
    changed = swagger_ui.with_example(document, tmp_path / "sample_request.json")
    assert changed["components"]["schemas"]["ServiceInput"]["example"] == {"data": [{"age": 30}]}


# ------------------------------------------------------------------------------------------ load generator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the endpoint's front end answers

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        data = json.loads(body)["data"]
        status = 500 if data[0].get("fail") else 200
        reply = json.dumps({"result": ["no"] * len(data)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        if data[0].get("close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_build_bodies_cuts_real_rows_and_cycles():
    rows = [{"i": i} for i in range(5)]
    bodies = [json.loads(b)["data"] for b in build_bodies(rows, 100, 2)]
    assert bodies == [[{"i": 0}, {"i": 1}], [{"i": 2}, {"i": 3}], [{"i": 4}, {"i": 0}]]
    assert len(build_bodies(rows, 2, 1)) == 2
    with pytest.raises(CapcError, match="no rows"):
        build_bodies([], 1, 1)
    with pytest.raises(CapcError, match="plain JSON"):
        build_bodies([{"x": float("nan")}], 1, 1)


@pytest.mark.parametrize("requests, concurrency, rows, word", [(0, 1, 1, "--requests"), (10**7, 1, 1, "--requests"),
                                                               (1, 0, 1, "--concurrency"), (1, 1000, 1, "--concurrency"),
                                                               (1, 1, 0, "--rows")])
def test_bench_is_bounded(requests, concurrency, rows, word):
    with pytest.raises(CapcError, match=word):
        check_bounds(requests, concurrency, rows)


def test_load_counts_answers_statuses_and_percentiles(http_server):
    bodies = build_bodies([{"a": 1}, {"a": 2}, {"fail": True}, {"close": True}], 200, 1)
    result = run_load(http_server, "/score", {"Authorization": "Bearer k"}, bodies, 200, 4, keep_timeline=True)
    assert result.complete == 200 and result.failed == 0
    assert result.status_counts == {"200": 150, "500": 50}
    assert result.non_2xx == 50 and result.errors == 50 and result.first_error.startswith("HTTP 500")
    lat = result.latency_ms
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert len(result.timeline) == 200 and result.requests_per_s > 0
    text = result.report()
    assert "Requests per second" in text and "Non-2xx responses:      50" in text and "100%" in text
    assert json.dumps(result.to_dict())


def test_load_counts_refused_connections_as_failed():
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        result = run_load(port, "/score", {}, build_bodies([{"a": 1}], 5, 1), 5, 2)
    assert result.failed == 5 and result.complete == 0 and result.errors == 5
    assert "Connection" in result.first_error or "refused" in result.first_error.lower()


def test_load_stops_when_asked(http_server):
    stop_now = threading.Event()
    stop_now.set()
    result = run_load(http_server, "/score", {}, build_bodies([{"a": 1}], 1000, 1), 1000, 2, until=stop_now.is_set)
    assert result.complete == 0 and result.stopped_early


# ------------------------------------------------------------------------------------------ logs


def test_follow_yields_appended_and_rotated_lines(tmp_path):
    log = tmp_path / "requests.log"
    log.write_text('{"n": 1}\n')
    seen = []
    lines = endpoint_logs._follow_lines(log, follow=True, tail_lines=None, poll_s=0.02)

    def reader():
        for line in lines:
            seen.append(json.loads(line)["n"])
            if len(seen) == 4:
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    time.sleep(0.2)
    with open(log, "a") as handle:
        handle.write('{"n": 2}\n{"n"')
        handle.flush()
        time.sleep(0.1)
        handle.write(': 3}\n')
    time.sleep(0.2)
    os.replace(log, tmp_path / "requests.log.1")
    log.write_text('{"n": 4}\n')
    thread.join(timeout=5)
    assert seen == [1, 2, 3, 4]
    assert list(endpoint_logs._follow_lines(log, follow=False, tail_lines=0, poll_s=0.02)) == []


def test_log_record_format():
    line = serve.format_log_record({"time": "2026-01-01T00:00:00.000Z", "status": 401, "latency_ms": 1.5, "method": "POST",
                                    "path": "/score", "request_id": "r1", "model": "bank:1", "error": "missing key"})
    assert line == "2026-01-01T00:00:00.000Z 401     1.50 ms POST /score r1 bank:1 missing key"


# ------------------------------------------------------------------------------------------ processes


def test_stop_only_signals_processes_that_name_the_endpoint(tmp_path):
    marker = str(tmp_path / "endpoints" / "bank") + os.sep
    process = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", marker])
    try:
        deadline = time.monotonic() + 10
        while not is_ours(process.pid, marker) and time.monotonic() < deadline:
            time.sleep(0.02)  # until the child has exec'd: before that /proc shows the parent's command line
        assert is_ours(process.pid, marker)
        assert not is_ours(process.pid, str(tmp_path / "endpoints" / "other") + os.sep)
        stop(process.pid, str(tmp_path / "endpoints" / "ban") + os.sep + "x", grace_s=0.2)
        assert process.poll() is None  # not ours by that marker: left alone
        stop(process.pid, marker, grace_s=5)
        assert process.wait(timeout=5) is not None
        assert not is_ours(process.pid, marker)
    finally:
        if process.poll() is None:
            process.kill()
    assert not is_ours(None, marker)
