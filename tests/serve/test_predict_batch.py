"""Batch scoring (`capc predict`): a CSV file in chunks through the generated score.py, written atomically.

The model is the small bank-marketing Pipeline of serve_fixtures, registered in a temporary $CAPC_HOME with the
job folder `capc build specs/bankmarketing.yaml` writes (the real score.py template). Predictions are compared
with score.py answering all rows in one request and with the model itself; the slow test compares them with the
running local endpoint over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.errors import CapcError
from capc.serve import batch
from serve_fixtures import bank_frame, generated_job_dir, save_model

NAME = "bank"
LOADS = itertools.count()  # inference-schema allows one run() per module name and process
ROWS, CHUNK_ROWS = 2500, 1000


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """bank:1 in a fresh $CAPC_HOME, trained from generated/bankmarketing/, plus a 2,500-row input file."""
    from capc.state import registry

    home = tmp_path_factory.mktemp("capc_home")
    job = generated_job_dir(home / "generated")
    assert job is not None, "capc build generated no score.py"
    model_dir = save_model(home / "trained" / "model", pip_requirements=["scikit-learn"])
    previous = os.environ.get("CAPC_HOME")
    os.environ["CAPC_HOME"] = str(home)
    try:
        model = registry.register(
            model_dir, name=NAME, task="classification", metric="accuracy", value=0.9, goal="maximize",
            source="sweep", run_id="test-run", spec_sha256="0" * 64, job_dir=str(job),
        )
        registered_dir = model.model_dir  # resolved under this $CAPC_HOME
    finally:
        os.environ.pop("CAPC_HOME") if previous is None else os.environ.__setitem__("CAPC_HOME", previous)
    rows = home / "rows.csv"
    bank_frame(ROWS, skip=1000).to_csv(rows, index=False)
    return SimpleNamespace(home=home, job=job, model=model, model_dir=registered_dir, rows=rows)


@pytest.fixture
def capc_home(registered, monkeypatch):
    monkeypatch.setenv("CAPC_HOME", str(registered.home))
    return registered.home


def predict(registered, input_path: Path, output_path: Path, **options):
    return batch.score_csv(
        registered.model_dir, registered.job, input_path, output_path,
        model_ref=registered.model.ref, task=registered.model.task, **options,
    )


def score_module(registered):
    """score.py imported on its own (not through capc.serve.batch), as a second opinion."""
    spec = importlib.util.spec_from_file_location(f"score_under_test_{next(LOADS)}", registered.job / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = os.environ.get("AZUREML_MODEL_DIR")
    os.environ["AZUREML_MODEL_DIR"] = str(registered.model_dir.parent)
    try:
        module.init()
    finally:
        os.environ.pop("AZUREML_MODEL_DIR") if saved is None else os.environ.__setitem__("AZUREML_MODEL_DIR", saved)
    return module


def read_rows(path: Path, **options) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip", **options)  # every number as its digits say


def answers(score, frame: pd.DataFrame, rows_per_request: int) -> dict:
    """score.py's answers for the frame's rows, sent as records (the endpoint's other body form) in requests."""
    out = {"result": [], "probabilities": []}
    for start in range(0, len(frame), rows_per_request):
        reply = score.run(data=records(frame.iloc[start : start + rows_per_request]))
        if hasattr(reply, "get_data"):  # an answer with headers: rows with categories the model never saw
            reply = json.loads(reply.get_data(as_text=True))
        out["result"] += reply["result"]
        out["probabilities"] += reply["probabilities"]
    return out


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as a client sends them to the endpoint: JSON values, missing cells null."""
    rows = frame.drop(columns="y").astype(object).where(frame.drop(columns="y").notna(), None).to_dict("records")
    return json.loads(json.dumps(rows))


# ------------------------------------------------------------------------------------------ same answers


def test_chunks_give_the_answers_score_py_gives_for_all_rows_at_once(registered, tmp_path, monkeypatch):
    seen = []
    score = batch.ScoringScript.score

    def counting(self, chunk, **kwargs):
        seen.append(len(chunk))
        return score(self, chunk, **kwargs)

    monkeypatch.setattr(batch.ScoringScript, "score", counting)
    progress = []
    out = tmp_path / "out.csv"
    result = predict(registered, registered.rows, out, chunk_rows=CHUNK_ROWS, progress=lambda *a: progress.append(a))

    assert seen == [1000, 1000, 500]  # one run() per chunk, never more rows than a chunk at once
    assert (result.rows, result.chunks, result.chunk_rows) == (ROWS, 3, CHUNK_ROWS)
    assert result.added_columns == ["prediction", "probability_no", "probability_yes"]
    size = registered.rows.stat().st_size
    assert [bytes_read for bytes_read, _, _ in progress] == sorted(bytes_read for bytes_read, _, _ in progress)
    assert progress[0] == (0, size, 0) and progress[-1] == (size, size, ROWS)
    assert all(total == size for _, total, _ in progress) and [rows for _, _, rows in progress[1:4]] == [1000, 2000, 2500]

    written = read_rows(out)
    given = read_rows(registered.rows)
    assert list(written.columns) == list(given.columns) + result.added_columns
    pd.testing.assert_frame_equal(written[given.columns], given)

    # The endpoint asked for the same rows, 1,000 per request: the very same answers, bit for bit.
    by_request = answers(score_module(registered), given, rows_per_request=CHUNK_ROWS)
    assert written["prediction"].tolist() == by_request["result"]
    assert written["probability_yes"].tolist() == [p["yes"] for p in by_request["probabilities"]]
    assert written["probability_no"].tolist() == [p["no"] for p in by_request["probabilities"]]
    # All rows in one request: the same labels; probabilities may differ in the last bits (BLAS sums in blocks).
    whole = answers(score_module(registered), given, rows_per_request=ROWS)
    assert written["prediction"].tolist() == whole["result"]
    assert written["probability_yes"].tolist() == pytest.approx([p["yes"] for p in whole["probabilities"]], rel=1e-12, abs=1e-15)


def test_answers_are_the_models_own(registered, tmp_path):
    import mlflow.sklearn

    out = tmp_path / "out.csv"
    predict(registered, registered.rows, out, chunk_rows=700)
    written = read_rows(out)
    pipeline = mlflow.sklearn.load_model(str(registered.model_dir))
    features = read_rows(registered.rows).drop(columns="y")
    assert written["prediction"].tolist() == pipeline.predict(features).tolist()
    yes = list(pipeline.classes_).index("yes")
    assert written["probability_yes"].to_numpy() == pytest.approx(pipeline.predict_proba(features)[:, yes], abs=1e-12)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_output_follows_the_umask_as_any_unix_tool(registered, tmp_path, umask, mode):
    out = tmp_path / "out.csv"
    previous = os.umask(umask)
    try:
        predict(registered, registered.rows, out, chunk_rows=700)
        out.chmod(0o600)
        predict(registered, registered.rows, out, chunk_rows=700)  # a rerun replaces it, with the umask's mode again
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == mode
    assert not list(tmp_path.glob(".out.csv.*"))  # no temp file left beside it


def test_rows_with_categories_the_model_never_saw_are_counted_per_column(registered, tmp_path):
    frame = bank_frame(300).head(40)  # the rows the model trained on: nothing new in them
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    assert predict(registered, source, tmp_path / "out.csv", chunk_rows=15).unseen_categories == {}
    frame.loc[[0, 20, 39], "job"] = "astronaut"  # in three chunks
    frame.loc[5, "month"] = "smarch"
    frame.to_csv(source, index=False)
    result = predict(registered, source, tmp_path / "out.csv", chunk_rows=15)
    assert result.unseen_categories == {"job": 3, "month": 1}
    assert result.to_dict()["unseen_categories"] == {"job": 3, "month": 1}
    assert result.summary().endswith("\nrows with a category the model never saw in training: job 3, month 1")


def test_extra_and_reordered_columns_pass_through(registered, tmp_path):
    frame = read_rows(registered.rows).head(30)
    frame.insert(0, "customer id", [f"c-{i}" for i in range(30)])
    reordered = frame[list(frame.columns)[::-1]]
    source = tmp_path / "in.csv"
    reordered.to_csv(source, index=False)
    predict(registered, source, tmp_path / "a.csv", chunk_rows=7)
    predict(registered, registered.rows, tmp_path / "b.csv")
    a, b = read_rows(tmp_path / "a.csv"), read_rows(tmp_path / "b.csv").head(30)
    assert list(a.columns)[: len(reordered.columns)] == list(reordered.columns)
    assert a["customer id"].tolist() == frame["customer id"].tolist()
    assert a["prediction"].tolist() == b["prediction"].tolist()
    assert a["probability_yes"].tolist() == pytest.approx(b["probability_yes"].tolist(), rel=1e-12, abs=1e-15)


def test_numbers_spelled_differently_per_chunk_score_like_the_endpoint(registered, tmp_path):
    frame = read_rows(registered.rows).head(40)
    source = tmp_path / "spelled.csv"
    text = frame.to_csv(index=False).splitlines()
    header = text[0].split(",")
    age = header.index("age")
    for line in range(1, 11):  # the first chunk reads `age` as floats ("30.0"), the others as integers
        cells = text[line].split(",")
        cells[age] = f"{cells[age]}.0"
        text[line] = ",".join(cells)
    source.write_text("\n".join(text) + "\n")
    out = tmp_path / "out.csv"
    predict(registered, source, out, chunk_rows=10)
    expected = answers(score_module(registered), frame, rows_per_request=10)
    written = read_rows(out)
    assert written["prediction"].tolist() == expected["result"]
    assert written["probability_yes"].tolist() == [p["yes"] for p in expected["probabilities"]]


def test_input_values_come_back_byte_for_byte(registered, tmp_path):
    """Numbers as spelled, empty cells, quoting, a line break inside quotes, CRLF endings: every input byte stays."""
    lines = registered.rows.read_text().splitlines()[:41]
    header = lines[0].split(",")
    euribor, duration, conf, job = (header.index(c) for c in ("euribor3m", "duration", "cons.conf.idx", "job"))
    spelled = {1: (euribor, "4.858"), 2: (euribor, "4.80"), 3: (duration, "1e3"), 4: (conf, "-42.70"), 5: (job, '"blue-collar"'), 6: (job, "")}
    records = [lines[0] + ',note']
    for number, line in enumerate(lines[1:], start=1):
        cells = line.split(",")
        if number in spelled:
            column, text = spelled[number]
            cells[column] = text
        note = {7: '"a, b"', 8: '"two\r\nlines"', 9: '"say ""hi"""', 10: " padded "}.get(number, "")
        records.append(",".join(cells) + "," + note)
    source = tmp_path / "spelled.csv"
    source.write_bytes(("\r\n".join(records) + "\r\n").encode())
    out = tmp_path / "out.csv"
    result = predict(registered, source, out, chunk_rows=4)  # the quoted line break falls across chunk borders

    written, at = out.read_bytes(), 0
    for given in map(str.encode, records):  # each output line: the input record as it was, then the added cells
        assert written.startswith(given + b",", at), (given, written[at : at + len(given) + 40])
        at = written.index(b"\r\n", at + len(given)) + 2
    assert at == len(written)
    assert written.startswith((records[0] + ",prediction,probability_no,probability_yes\r\n").encode())
    scored = read_rows(out)
    assert len(scored) == result.rows == 40
    assert scored["note"].tolist()[6:10] == ["a, b", "two\r\nlines", 'say "hi"', " padded "]
    assert set(scored["prediction"]) <= {"yes", "no"}
    # The cells were scored as the endpoint reads them: 4.80 is 4.8, 1e3 is 1000, an empty cell null.
    expected = answers(score_module(registered), read_rows(source).drop(columns="note"), rows_per_request=40)
    assert scored["prediction"].tolist() == expected["result"]
    assert scored["probability_yes"].tolist() == pytest.approx([p["yes"] for p in expected["probabilities"]], rel=1e-12, abs=1e-15)


def test_blank_lines_and_a_missing_last_line_break(registered, tmp_path):
    lines = registered.rows.read_text().splitlines()[:6]
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]))  # a blank line, no final line break
    out = tmp_path / "out.csv"
    assert predict(registered, source, out, chunk_rows=2).rows == 5
    written = out.read_text().splitlines()
    assert [line[: len(given)] for line, given in zip(written, lines)] == lines


# ------------------------------------------------------------------------------------------ atomic output


def bad_in_the_middle(registered, tmp_path) -> Path:
    frame = read_rows(registered.rows, dtype={"age": str})
    frame.loc[1499, "age"] = "forty"  # data row 1500, in the second chunk
    source = tmp_path / "bad.csv"
    frame.to_csv(source, index=False)
    return source


def test_a_bad_chunk_in_the_middle_leaves_no_output(registered, tmp_path):
    source = bad_in_the_middle(registered, tmp_path)
    out = tmp_path / "results" / "out.csv"
    with pytest.raises(CapcError) as caught:
        predict(registered, source, out, chunk_rows=CHUNK_ROWS)
    assert caught.value.message == (
        f'rows 1001-2000 of {source}: column "age", row 1500: expected a number, got "forty".'
    )
    assert caught.value.hint == "the endpoint answers these rows with HTTP 400 too"
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temp file left behind


def test_a_failure_leaves_the_previous_output_untouched(registered, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("previous results\n")
    with pytest.raises(CapcError):
        predict(registered, bad_in_the_middle(registered, tmp_path), out, chunk_rows=CHUNK_ROWS)
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.csv"]
    predict(registered, registered.rows, out, chunk_rows=CHUNK_ROWS)  # a good run replaces it whole
    assert len(read_rows(out)) == ROWS


# ------------------------------------------------------------------------------------------ errors


def test_missing_input_file(registered, tmp_path):
    with pytest.raises(CapcError) as caught:
        predict(registered, tmp_path / "nope.csv", tmp_path / "out.csv")
    assert caught.value.message == f"input file {tmp_path / 'nope.csv'} does not exist."


def test_missing_required_column_is_named(registered, tmp_path):
    source = tmp_path / "in.csv"
    read_rows(registered.rows).head(5).drop(columns=["euribor3m"]).to_csv(source, index=False)
    with pytest.raises(CapcError) as caught:
        predict(registered, source, tmp_path / "out.csv")
    assert caught.value.message == f"{source} has no column `euribor3m`, which the model needs."
    assert caught.value.hint.startswith("the model takes 20 columns: age, job, marital")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("content, message", [
    ("", "is empty: no header row, no rows."),
    ("\n\n", "is empty: no header row, no rows."),
    (None, "has a header but no rows to score."),
])
def test_empty_files(registered, tmp_path, content, message):
    source = tmp_path / "in.csv"
    source.write_text(content if content is not None else registered.rows.read_text().splitlines()[0] + "\n")
    with pytest.raises(CapcError) as caught:
        predict(registered, source, tmp_path / "out.csv")
    assert caught.value.message == f"{source} {message}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_output_column_already_in_the_input(registered, tmp_path):
    source = tmp_path / "in.csv"
    predict(registered, registered.rows, source, chunk_rows=CHUNK_ROWS)
    with pytest.raises(CapcError) as caught:
        predict(registered, source, tmp_path / "again.csv")
    assert caught.value.message == f"{source} already has a column `prediction`, which `capc predict` writes."


def test_output_must_not_be_the_input(registered, tmp_path):
    with pytest.raises(CapcError, match="is the input file"):
        predict(registered, registered.rows, registered.rows)


def test_image_models_are_refused(registered, tmp_path):
    with pytest.raises(CapcError) as caught:
        batch.score_csv(registered.model_dir, registered.job, registered.rows, tmp_path / "out.csv", model_ref="mri:1", task="image_classification")
    assert caught.value.message == "`mri:1` classifies images; `capc predict` scores the rows of a CSV file."


def test_the_environment_is_restored(registered, tmp_path):
    before = dict(os.environ)
    predict(registered, registered.rows, tmp_path / "out.csv")
    assert dict(os.environ) == before


# ------------------------------------------------------------------------------------------ the command


def test_cli_scores_the_latest_version_and_reports(registered, capc_home, tmp_path):
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(cli, ["predict", NAME, "--input", str(registered.rows), "--output", str(out), "--chunk-rows", "1000", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "bank:1" and report["rows"] == ROWS and report["chunks"] == 3
    assert len(read_rows(out)) == ROWS
    result = CliRunner().invoke(cli, ["predict", "bank:1", "--input", str(registered.rows), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"scored {ROWS} rows of {registered.rows} with bank:1 in 1 chunk(s)")


@pytest.mark.parametrize("args, message", [
    (["nosuch", "--input", "{rows}", "--output", "{out}"], "error: no registered model named `nosuch` in {home}/registry. registered models: bank"),
    (["bank:7", "--input", "{rows}", "--output", "{out}"], "error: model `bank` has no version 7. versions: 1"),
    (["bank", "--input", "{missing}", "--output", "{out}"], "error: input file {missing} does not exist. pass a CSV file with a header row: --input FILE.csv"),
])
def test_cli_errors_exit_1_with_one_paragraph(registered, capc_home, tmp_path, args, message):
    values = {"rows": registered.rows, "out": tmp_path / "out.csv", "missing": tmp_path / "missing.csv", "home": capc_home}
    result = CliRunner().invoke(cli, ["predict", *(a.format(**values) for a in args)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == message.format(**values) + "\n"
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.csv").exists()


def test_cli_bad_row_names_the_row(registered, capc_home, tmp_path):
    source = bad_in_the_middle(registered, tmp_path)
    result = CliRunner().invoke(cli, ["predict", NAME, "--input", str(source), "--output", str(tmp_path / "out.csv"), "--chunk-rows", "1000"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and 'row 1500: expected a number, got "forty"' in result.stderr
    assert "Traceback" not in result.output


def test_cli_chunk_rows_must_be_positive(registered, capc_home, tmp_path):
    result = CliRunner().invoke(cli, ["predict", NAME, "--input", str(registered.rows), "--output", str(tmp_path / "o.csv"), "--chunk-rows", "0"])
    assert result.exit_code == 2 and "--chunk-rows" in result.stderr


# ------------------------------------------------------------------------------------------ the endpoint itself


@pytest.mark.slow
def test_batch_answers_equal_the_running_endpoint(registered, tmp_path):
    """The same rows POSTed to the local endpoint (azmlinfsrv serving the same score.py and model)."""
    import http.client

    from capc import serve

    out = tmp_path / "out.csv"
    predict(registered, registered.rows, out, chunk_rows=CHUNK_ROWS)
    written = read_rows(out)
    info = serve.deploy(NAME, registered.model_dir, registered.job, home=registered.home, worker_count=1)
    try:
        key = serve.keys(NAME, registered.home)["primaryKey"]
        given = read_rows(registered.rows)
        endpoint = {"result": [], "probabilities": []}
        for start in range(0, ROWS, CHUNK_ROWS):  # the rows of each chunk in one request
            body = json.dumps({"data": records(given.iloc[start : start + CHUNK_ROWS])}).encode()
            conn = http.client.HTTPConnection("127.0.0.1", info.port, timeout=60)
            conn.request("POST", "/score", body=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
            reply = conn.getresponse()
            assert reply.status == 200
            part = json.loads(reply.read())
            conn.close()
            endpoint["result"] += part["result"]
            endpoint["probabilities"] += part["probabilities"]
    finally:
        serve.delete(NAME, registered.home)
    assert written["prediction"].tolist() == endpoint["result"]
    assert written["probability_yes"].tolist() == [p["yes"] for p in endpoint["probabilities"]]
    assert written["probability_no"].tolist() == [p["no"] for p in endpoint["probabilities"]]
