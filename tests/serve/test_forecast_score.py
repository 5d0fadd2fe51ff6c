"""The generated forecasting score.py (templates/score_forecast.py.j2), loaded in this process as azmlinfsrv loads it,
answering Azure AutoML's forecasting request shape with a real forecasting model (tests/forecast_models.py)."""

from __future__ import annotations

import json

import pytest

from capc import serving_cost
from forecast_models import HORIZON, SERIES, SERIES_NAMES, TIME, forecast_job_dir, save_forecast_model


@pytest.fixture(scope="module")
def score(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecast_score")
    job = forecast_job_dir(folder / "job")
    model = save_forecast_model(folder / "model")
    with serving_cost.loaded_score_module(str(job / "score.py"), str(model), str(job)) as (module, _):
        module.sample = json.loads((job / "sample_request.json").read_text(encoding="utf-8"))
        yield module


def _error(reply) -> tuple[int, str]:
    assert hasattr(reply, "status_code"), f"expected an error reply, got {reply!r}"
    return reply.status_code, json.loads(reply.get_data(as_text=True))["message"]


def test_the_sample_request_is_the_next_horizon_of_the_first_series(score):
    rows = score.sample["Inputs"]["data"]
    assert [row[SERIES] for row in rows] == [SERIES_NAMES[0]] * HORIZON
    # The history ends in 2008Q3 (the fixture holds the last horizon back): the next four quarters follow it.
    assert [row[TIME] for row in rows] == ["2008-10-01", "2009-01-01", "2009-04-01", "2009-07-01"]
    assert score.sample["GlobalParameters"] == {"quantiles": [0.1, 0.9]}


def test_a_horizon_request_answers_one_forecast_per_row_with_quantiles(score):
    reply = score.run(**score.sample)
    results = reply["Results"]
    rows = score.sample["Inputs"]["data"]
    assert results["index"] == [{TIME: row[TIME], SERIES: row[SERIES]} for row in rows]
    assert len(results["forecast"]) == HORIZON and all(isinstance(v, float) for v in results["forecast"])
    low, high = results["quantiles"]["0.1"], results["quantiles"]["0.9"]
    assert all(a <= b for a, b in zip(low, high))
    assert results["prediction_interval"] == [f"[{a}, {b}]" for a, b in zip(low, high)]


def test_every_series_in_one_request_without_quantiles(score):
    rows = [{TIME: "2008-10-01", SERIES: name} for name in SERIES_NAMES]
    results = score.run(Inputs={"data": rows})["Results"]
    assert len(results["forecast"]) == len(SERIES_NAMES)
    assert "quantiles" not in results and "prediction_interval" not in results
    # realinv is an order of magnitude below realgdp: each row is forecast from its own series.
    by_series = dict(zip(SERIES_NAMES, results["forecast"]))
    assert by_series["realgdp"] > 5 * by_series["realinv"]


def test_context_rows_are_answered_by_the_rows_after_them(score):
    context = [{TIME: f"2008-{m:02d}-01", SERIES: "realgdp", "y_query": 13000.0 + m} for m in (1, 4, 7)]
    asked = [{TIME: "2008-10-01", SERIES: "realgdp", "y_query": None}]
    results = score.run(Inputs={"data": context + asked})["Results"]
    assert results["index"] == [{TIME: "2008-10-01", SERIES: "realgdp"}]
    assert len(results["forecast"]) == 1


@pytest.mark.parametrize("cell, words", [
    ("2009-13-01", '"2009-13-01" in the time column "quarter" is not a date or time'),
    ("next spring", '"next spring" in the time column "quarter" is not a date or time'),
    ("", 'the time column "quarter" is empty'),
    (None, 'the time column "quarter" is empty'),
    (20091001, 'the time column "quarter" must be date text like "2009-10-01", not 20091001'),
])
def test_a_bad_time_cell_is_a_400_naming_its_row(score, cell, words):
    rows = [{TIME: "2008-10-01", SERIES: "realgdp"}, {TIME: cell, SERIES: "realgdp"}]
    status, message = _error(score.run(Inputs={"data": rows}))
    assert status == 400
    assert message.startswith('"Inputs.data"[1]: ') and words in message


def test_a_row_without_the_time_column_is_a_400_naming_the_columns(score):
    status, message = _error(score.run(Inputs={"data": [{SERIES: "realgdp", "when": "2008-10-01"}]}))
    assert status == 400
    assert message == '"Inputs.data"[0] has no column "quarter" (each row names "quarter", "series"; the model forecasts 4 steps ahead)'


@pytest.mark.parametrize("body, words", [
    ({}, 'the body needs "Inputs"'),
    ({"Inputs": [1]}, '"Inputs" must be an object'),
    ({"Inputs": {"data": []}}, '"Inputs.data" must be a non-empty list'),
    ({"Inputs": {"data": ["2008-10-01"]}}, '"Inputs.data"[0] must be an object'),
    ({"Inputs": {"data": [{TIME: "2008-10-01", SERIES: "realgdp"}]}, "GlobalParameters": {"quantiles": [0.5, 1.5]}},
     '"GlobalParameters.quantiles": 1.5 is not a number strictly between 0 and 1'),
    ({"Inputs": {"data": [{TIME: "2008-10-01", SERIES: "realgdp", "y_query": 1.0}]}}, "every row holds an actual value"),
    ({"Inputs": {"data": [{TIME: "2008-10-01", SERIES: "realgdp", "y_query": "high"}]}}, 'must be a number or null, not "high"'),
])
def test_malformed_requests_are_400s(score, body, words):
    status, message = _error(score.run(**body))
    assert status == 400 and words in message


def test_a_series_the_model_does_not_know_is_a_400(score):
    status, message = _error(score.run(Inputs={"data": [{TIME: "2008-10-01", SERIES: "nominalgdp"}]}))
    assert status == 400 and message.startswith("the model cannot forecast these rows: ")


def test_a_model_without_quantiles_answers_the_forecast_and_says_so(tmp_path):
    from forecast_models import settings, split_last_horizon, macro_frame
    from capc.forecasting import Forecaster

    history, _ = split_last_horizon(macro_frame())
    uncalibrated = Forecaster(settings()).fit(history, calibrate=False)  # no backtest residuals: no quantiles
    job = forecast_job_dir(tmp_path / "job")
    model = save_forecast_model(tmp_path / "model", uncalibrated)
    with serving_cost.loaded_score_module(str(job / "score.py"), str(model), str(job)) as (module, _):
        results = module.run(Inputs={"data": [{TIME: "2008-10-01", SERIES: "realgdp"}]}, GlobalParameters={"quantiles": [0.1, 0.9]})["Results"]
    assert len(results["forecast"]) == 1 and "quantiles" not in results
    assert results["notes"][0].startswith("no quantiles: ")
