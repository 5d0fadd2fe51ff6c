"""A forecasting spec end to end on the local engine (slow: a real AutoML search, then an endpoint): build, submit
(registers the winner), `capc predict --horizon`, `capc report` with the forecast figures, and `capc deploy` +
`capc invoke` of its sample forecast request. The data is specs/data/macro (statsmodels' macrodata series)."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from capc.cli import cli
from repo import REPO, write_spec
from test_report import open_in_chromium

pytestmark = pytest.mark.slow

SPEC = """\
    name: macro-e2e
    description: US quarterly macro series, forecast end to end
    dataset: {path: data/macro_train.csv, format: csv, target: value, cross_validations: 2}
    task: forecasting
    metric: normalized_mean_absolute_error
    forecasting:
      time_column_name: quarter
      time_series_id_column_names: [series]
      forecast_horizon: 4
      frequency: QS
    automl: {timeout_minutes: 1, max_trials: 4}
"""


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_a_forecasting_spec_submits_predicts_reports_and_serves(workdir):
    (workdir / "data").mkdir()
    shutil.copy(REPO / "specs" / "data" / "macro" / "macro_train.csv", workdir / "data" / "macro_train.csv")
    spec = write_spec(workdir, SPEC)
    submitted = _invoke("submit", spec, "--out", workdir / "generated", "--json")
    assert submitted.exit_code == 0, submitted.output

    predicted = _invoke("predict", "macro-e2e", "--horizon", "4", "--quantiles", "0.1,0.9", "--output", workdir / "f.csv")
    assert predicted.exit_code == 0, predicted.output
    forecast = pd.read_csv(workdir / "f.csv")
    series = pd.read_csv(workdir / "data" / "macro_train.csv")["series"].nunique()
    assert len(forecast) == 4 * series and (forecast["q0.1"] <= forecast["q0.9"]).all()

    reported = _invoke("report", "macro-e2e", "--out", workdir / "report.html")
    assert reported.exit_code == 0, reported.output
    html = (workdir / "report.html").read_text(encoding="utf-8")
    for title in ("forecast against actual", "error by horizon step"):
        assert f'aria-label="{title}"' in html
    assert "held-out forecasts" in html and "seasonal naive" in html
    assert not re.search(r"(src|href)=\"(https?:|//)", html)
    seen = open_in_chromium(workdir / "report.html", workdir / "profile")  # from file://, as test_report's pages
    assert not seen["errors"], seen["errors"]
    assert seen["requested"][0] == (workdir / "report.html").as_uri()
    assert all(url.startswith("data:") for url in seen["requested"][1:]), seen["requested"]
    boxes = {box["id"]: box for box in seen["boxes"]}
    assert all(boxes[k]["width"] > 100 and boxes[k]["height"] > 100 for k in ("forecast", "horizon-error")), seen["boxes"]

    try:
        deployed = _invoke("deploy", "macro-e2e", "--json")
        assert deployed.exit_code == 0, deployed.output
        answered = _invoke("invoke", "macro-e2e")
        assert answered.exit_code == 0, answered.output
        results = json.loads(answered.stdout)["Results"]
        assert len(results["forecast"]) == 4 and set(results["quantiles"]) == {"0.1", "0.9"}
    finally:
        _invoke("endpoints", "delete", "macro-e2e-endpoint")
