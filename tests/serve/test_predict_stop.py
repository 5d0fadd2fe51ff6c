"""`capc predict` stopped by a signal while it scores: exit 130/143, a one-line message, no traceback, and neither
OUT nor a partial file left behind (an earlier OUT stays as it was)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from serve_fixtures import bank_frame, generated_job_dir, save_model


@pytest.fixture(scope="module")
def scoring(tmp_path_factory):
    """bank:1 registered in a fresh $CAPC_HOME, and an input file big enough to take seconds in small chunks."""
    from capc.state import registry

    home = tmp_path_factory.mktemp("capc_home")
    job = generated_job_dir(home / "generated")
    assert job is not None, "capc build generated no score.py"
    model_dir = save_model(home / "trained" / "model", pip_requirements=["scikit-learn"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPC_HOME", str(home))
        registry.register(
            model_dir, name="bank", task="classification", metric="accuracy", value=0.9, goal="maximize",
            source="sweep", run_id="test-run", spec_sha256="0" * 64, job_dir=str(job),
        )
    rows = home / "rows.csv"
    frame = bank_frame(5000).drop(columns="y")
    for part in range(8):  # 40,000 rows
        frame.to_csv(rows, mode="a", header=part == 0, index=False)
    return home, rows


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)])
def test_a_stopped_predict_leaves_no_output_and_no_partial_file(scoring, tmp_path, signum, status):
    home, rows = scoring
    out = tmp_path / "scored.csv"
    out.write_text("an earlier result\n")
    predict = subprocess.Popen(
        [sys.executable, "-m", "capc", "predict", "bank", "--input", str(rows), "--output", str(out), "--chunk-rows", "200"],
        env={**os.environ, "CAPC_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".scored.csv.*.partial")):  # the model is loaded and rows are being scored
        assert predict.poll() is None, predict.communicate()
        assert time.monotonic() < deadline, "predict never started writing"
        time.sleep(0.05)
    os.kill(predict.pid, signum)
    stdout, stderr = predict.communicate(timeout=60)
    assert predict.returncode == status, stderr
    assert "Traceback" not in stderr + stdout
    assert f"{out} was not written" in stderr
    assert out.read_text() == "an earlier result\n"
    assert not list(tmp_path.glob(".scored.csv.*"))
