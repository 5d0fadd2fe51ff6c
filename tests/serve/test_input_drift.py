"""One error shape across the endpoint (the inference server's {"message": ...}), and input drift: a column the
model does not take is refused naming it, a text value it never saw is scored; both counted per column in the
x-capc-input-drift header and the request log."""

from __future__ import annotations

import http.client
import json

import pytest

from capc import serve, serving_cost
from capc.serve.endpoint_logs import format_log_record
from capc.serve.drift import counts_of as _counts_of
from capc.serve.proxy import _error, _message_of
from serve_fixtures import TARGET, bank_frame, bank_records, generated_job_dir, registered_model

HEADERS = {"unknown_columns": "x-capc-unknown-columns", "unseen_categories": "x-capc-unseen-categories"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    job = generated_job_dir(root / "generated")
    return job, registered_model(root / "home", "bank", 1)


def body_of(reply) -> dict:
    return json.loads(reply.get_data(as_text=True)) if hasattr(reply, "get_data") else reply


def drift_of(reply) -> dict:
    """The drift headers as the proxy reads them (score.py sends each list item as a header line of its own)."""
    headers = getattr(reply, "headers", None)
    if headers is None:
        return {}
    return {kind: _counts_of(", ".join(headers.getlist(name))) for kind, name in HEADERS.items() if name in headers}


def test_an_unknown_column_is_refused_naming_it_and_counted(generated):
    job, model = generated
    with serving_cost.loaded_score_module(str(job / "score.py"), str(model), str(job)) as (score, _):
        rows = [{**row, "customer_id": i} for i, row in enumerate(bank_records(3))]
        reply = score.run(data=rows)
        assert reply.status_code == 400
        assert body_of(reply)["message"].startswith('the model takes no column "customer_id" (the model takes 20 columns: "age", ')
        assert drift_of(reply) == {"unknown_columns": {"customer_id": 3}}
        split = score.run(input_data={"columns": [*rows[0]], "data": [list(r.values()) for r in rows[:2]]})
        assert split.status_code == 400 and drift_of(split) == {"unknown_columns": {"customer_id": 2}}


def test_an_unseen_category_is_scored_and_counted_per_column(generated):
    job, model = generated
    with serving_cost.loaded_score_module(str(job / "score.py"), str(model), str(job)) as (score, _):
        rows = bank_records(4)
        plain = score.run(data=rows)
        assert isinstance(plain, dict) and len(plain["result"]) == 4  # nothing new: the answer as ever, no header
        rows[0]["job"] = rows[2]["job"] = "astronaut"
        rows[1]["month"] = "smarch"
        rows[3]["job"] = None  # a missing cell is no new category
        reply = score.run(data=rows)
        assert reply.status_code == 200 and len(body_of(reply)["result"]) == 4
        assert drift_of(reply) == {"unseen_categories": {"job": 2, "month": 1}}


def test_an_automl_model_counts_the_categories_flaml_saw(tmp_path):
    from capc.local.automl import AutoMLSettings, run_automl

    frame = bank_frame(300)
    settings = AutoMLSettings(task="classification", primary_metric="accuracy", target_column=TARGET, timeout_minutes=1,
                              max_trials=1, n_cross_validations=2, enable_vote_ensemble=False, enable_stack_ensemble=False,
                              allowed_algorithms=("LightGBM",))
    model_dir = run_automl(frame, settings).save_mlflow_model(tmp_path / "model")
    job = generated_job_dir(tmp_path / "generated")
    with serving_cost.loaded_score_module(str(job / "score.py"), str(model_dir), str(job)) as (score, _):
        rows = frame.drop(columns=TARGET).head(2).to_dict("records")
        assert isinstance(score.run(data=rows), dict)
        rows[1]["education"] = "unheard.of"
        assert drift_of(score.run(data=rows)) == {"unseen_categories": {"education": 1}}


def test_the_front_end_and_score_py_answer_errors_in_one_shape(generated):
    assert json.loads(_error(401, "missing or invalid key").body) == {"message": "missing or invalid key"}
    job, model = generated
    with serving_cost.loaded_score_module(str(job / "score.py"), str(model), str(job)) as (score, _):
        assert set(body_of(score.run(data=[]))) == {"message"}
    assert _message_of(b'{"message": "column \\"age\\", row 0: expected a number"}') == 'column "age", row 0: expected a number'
    assert _message_of(b"<html>oops</html>") == "<html>oops</html>"
    assert _counts_of("job=2, emp%2Cvar=1, broken, x=y, job=1") == {"job": 3, "emp,var": 1} and _counts_of(None) == {}


def test_a_log_line_shows_the_drift_per_column_and_the_reason_of_a_400():
    record = {"time": "t", "status": 400, "latency_ms": 1.0, "method": "POST", "path": "/score", "request_id": "r1",
              "model": "bank:1", "drift": {"unknown_columns": {"id": 3}, "unseen_categories": {"job": 2, "day": 1}},
              "error": "the model takes no column \"id\""}
    assert format_log_record(record) == ('t 400     1.00 ms POST /score r1 bank:1 unknown_columns=id:3 '
                                         'unseen_categories=day:1,job:2 the model takes no column "id"')


# ------------------------------------------------------------------------------------------ through the endpoint


def post(endpoint, payload, key: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=60)
    try:
        headers = {"Content-Type": "application/json"}
        if key is not False:
            headers["Authorization"] = f"Bearer {key or endpoint.key}"
        conn.request("POST", "/score", body=json.dumps(payload).encode(), headers=headers)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, json.loads(reply.read())
    finally:
        conn.close()


@pytest.mark.slow
def test_through_the_endpoint_errors_share_one_shape_and_drift_reaches_header_and_log(endpoint):
    wrong_key = post(endpoint, {"data": bank_records(1)}, key="wrong")
    bad_value = post(endpoint, {"data": [{**bank_records(1)[0], "age": "thirty"}]})
    for status, _, body in (wrong_key, bad_value):
        assert status in (400, 401) and list(body) == ["message"], body
    if endpoint.source == "fixture":  # the hand-written score.py knows no drift
        return
    rows = bank_records(2)
    rows[0]["job"] = "astronaut"
    status, headers, body = post(endpoint, {"data": rows})
    assert status == 200 and headers["x-capc-unseen-categories"] == "job=1" and "x-capc-unknown-columns" not in headers
    status, headers, body = post(endpoint, {"data": [{**rows[1], "customer_id": 7}]})
    assert status == 400 and headers["x-capc-unknown-columns"] == "customer_id=1"
    lines = [format_log_record(r) for r in serve.logs("bank", endpoint.home)][-4:]
    assert "age" in lines[1] and "expected a number" in lines[1]  # a 400's reason, as a 401's
    assert lines[2].endswith("unseen_categories=job:1")
    assert "unknown_columns=customer_id:1" in lines[3] and 'no column "customer_id"' in lines[3]
