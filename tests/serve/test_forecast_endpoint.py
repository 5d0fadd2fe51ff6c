"""`capc deploy` and `capc invoke` of a registered forecasting model (slow: azmlinfsrv loads the model in its workers):
the local endpoint serves the generated forecasting score.py, answers the sample request (the next horizon of a
series, with quantiles) and refuses a request with a bad time column with a 400 through the front end."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from capc.cli import cli
from forecast_models import HORIZON, SERIES, TIME, forecast_job_dir, save_forecast_model

pytestmark = pytest.mark.slow


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def registered(workdir):
    from capc.state import registry

    job = forecast_job_dir(workdir / "generated" / "macro")
    model = save_forecast_model(workdir / "model")
    registry.register(
        model, name="macro", task="forecasting", metric="normalized_mean_absolute_error", value=0.01, goal="minimize",
        source="automl", run_id="0" * 32, spec_sha256="0" * 64, job_dir=str(job),
    )
    yield job
    _invoke("endpoints", "delete", "macro")


def test_deploy_and_invoke_a_forecast(registered, workdir):
    deployed = _invoke("deploy", "macro", "--json")
    assert deployed.exit_code == 0, deployed.output
    info = json.loads(deployed.stdout)
    assert info["state"] == "running" and info["model"] == "macro:1"

    answered = _invoke("invoke", "macro")  # the job's sample_request.json: the next horizon of the first series
    assert answered.exit_code == 0, answered.output
    results = json.loads(answered.stdout)["Results"]
    sample = json.loads((registered / "sample_request.json").read_text())["Inputs"]["data"]
    assert results["index"] == sample and len(results["forecast"]) == HORIZON
    assert all(low <= high for low, high in zip(results["quantiles"]["0.1"], results["quantiles"]["0.9"]))

    bad = workdir / "bad.json"
    bad.write_text(json.dumps({"Inputs": {"data": [{TIME: "2009-13-01", SERIES: "realgdp"}]}}))
    refused = _invoke("invoke", "macro", "--data", bad)
    assert refused.exit_code == 1
    assert "answered 400" in refused.stderr
    assert json.loads(refused.stdout) == {
        "message": '"Inputs.data"[0]: "2009-13-01" in the time column "quarter" is not a date or time (ISO 8601, like "2009-10-01")'
    }
