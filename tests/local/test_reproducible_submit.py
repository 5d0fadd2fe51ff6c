"""The issue's "done when": two local submits of the bank spec with

    --reproducible --set seed=7 --set automl.max_trials=6 --set sweep.limits.max_total_trials=4

(and a lax serving budget, see ARGS) give the same leaderboard JSON (capc.local.reproducible.comparable_leaderboard: every candidate and trial, their
parameters and metric values to the last digit), the same winner, and registered models whose predictions -
on the winner's held-out rows as logged, and through MLflow on the spec's rows - are identical. Each submit is
the real console command in a fresh $CAPC_HOME (several minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capc.local.reproducible import comparable_leaderboard
from repo import DATA, SPECS

ARGS = ["--reproducible", "--set", "seed=7", "--set", "automl.max_trials=6", "--set", "sweep.limits.max_total_trials=4",
        # The spec's 15 ms p99 budget measures time, which no seed repeats: on a loaded 2-core machine every candidate
        # missed it (p99 21-56 ms) and the submit failed. Determinism is this test's subject, not latency.
        "--set", "deployment.max_latency_ms=1000",
        # likewise the load budget (requests/s and p99 under 4 clients): lenient, so both runs register their best
        "--set", "deployment.min_requests_per_s=1", "--set", "deployment.load.max_p99_ms=4000"]


def _capc(home: Path, *args: str) -> str:
    env = {**os.environ, "CAPC_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-m", "capc", *args], env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def _submit(home: Path) -> dict:
    result = json.loads(_capc(home, "submit", str(SPECS / "bankmarketing.yaml"), "--out", str(home / "generated"), "--json", *ARGS))
    board = json.loads(_capc(home, "leaderboard", "bankmarketing", "--json"))
    runs = json.loads(_capc(home, "runs", "bankmarketing", "--json"))
    return {"result": result, "board": board, "record": next(r["record"] for r in runs if r["kind"] == "submit")}


def _held_out(home: Path, run_id: str) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    path = client.download_artifacts(run_id, "held_out/predictions.json", str(home / "downloaded"))
    return json.loads(Path(path).read_text())


@pytest.mark.slow
def test_two_reproducible_submits_give_the_same_leaderboard_winner_and_predictions(tmp_path):
    first, second = _submit(tmp_path / "first"), _submit(tmp_path / "second")
    assert comparable_leaderboard(first["board"]) == comparable_leaderboard(second["board"])
    assert len(first["board"]["runs"]) >= 6 + 4
    one, two = first["result"], second["result"]
    assert (one["winner"], one["model"]["value"]) == (two["winner"], two["model"]["value"])
    assert [(r["source"], r["label"], r["value"], r["params"]) for r in one["results"]] == [
        (r["source"], r["label"], r["value"], r["params"]) for r in two["results"]]
    # The registered models predict the same, on the winner's held-out rows as logged and on the data itself.
    assert _held_out(tmp_path / "first", one["winner_run_id"]) == _held_out(tmp_path / "second", two["winner_run_id"])
    import mlflow.pyfunc

    rows = pd.read_csv(DATA / "bankmarketing" / "bankmarketing_train.csv").drop(columns=["y"]).iloc[:3000]
    predicted = [np.asarray(mlflow.pyfunc.load_model(r["model"]["model_dir"]).predict(rows)) for r in (one, two)]
    assert np.array_equal(*predicted)
    # Both runs recorded what they ran on.
    table = pd.read_csv(DATA / "bankmarketing" / "bankmarketing_train.csv")
    for record in (first["record"], second["record"]):
        assert record["seed"] == 7 and record["reproducible"] and record["data"]["rows"] == len(table)
    assert first["record"]["data"]["sha256"] == second["record"]["data"]["sha256"]
    assert first["record"]["manifest_sha256"] == second["record"]["manifest_sha256"]
