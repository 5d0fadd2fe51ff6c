"""The report of a forecasting model: its stored rolling-origin forecasts (capc.state.held_out) drawn as actual against
forecast per series on the last held-out horizon, and the error by horizon step, with a real Forecaster's forecasts
(tests/forecast_models.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from capc.report import _forecast_figures, forecast_figures
from capc.report.collect import ReportData
from capc.report.evaluation import from_stored
from capc.report.page import render_page
from capc.state.held_out import HeldOutPredictions
from capc.state.registry import ModelVersion
from forecast_models import (
    FREQUENCY, HORIZON, SERIES_NAMES, TARGET, forecast_job_dir, macro_frame, rolling_origin_held_out, save_forecast_model,
    split_last_horizon,
)
from test_report_figures import assert_inline_svg, texts


@pytest.fixture(scope="module")
def stored():
    return rolling_origin_held_out(cutoffs=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_forecast_model(tmp_path_factory.mktemp("forecast_report") / "model")


def _model(job_dir, model_dir) -> ModelVersion:
    """The model registered under the test's private $CAPC_HOME (the workdir fixture)."""
    from capc.state import registry

    return registry.register(
        model_dir, name="macro", task="forecasting", metric="normalized_mean_absolute_error", value=0.01, goal="minimize",
        source="automl", run_id="0" * 32, spec_sha256="0" * 64, job_dir=str(job_dir),
    )


def test_stored_forecasts_round_trip_through_json(stored):
    again = HeldOutPredictions.from_dict(json.loads(json.dumps(stored.to_dict())))
    assert again == stored
    broken = dict(stored.to_dict(), steps=[1])
    with pytest.raises(ValueError, match=f"1 steps values for {stored.rows} predictions"):
        HeldOutPredictions.from_dict(broken)


def test_error_by_step_is_the_mean_absolute_error_of_each_step(stored):
    fields = {name: getattr(stored, name) for name in ("times", "series", "steps", "fold_index", "baseline")}
    settings = {"target": TARGET, "horizon": HORIZON, "frequency": FREQUENCY}
    held_out = forecast_figures.HeldOutForecasts.of(fields, stored.y_true, stored.y_pred, settings)
    errors = forecast_figures.error_by_step(held_out, stored.y_range)
    assert [step for step, _, _, _ in errors] == list(range(1, HORIZON + 1))
    assert all(count == 2 * len(SERIES_NAMES) for _, _, _, count in errors)  # 3 series x 2 cut-offs per step
    steps, actual = np.asarray(stored.steps), np.asarray(stored.y_true)
    first = np.abs(actual - np.asarray(stored.y_pred))[steps == 1].mean() / stored.y_range
    naive = np.abs(actual - np.asarray(stored.baseline))[steps == 1].mean() / stored.y_range
    assert errors[0][1:3] == (pytest.approx(first), pytest.approx(naive))
    # The cut-off of a forecast is one step before its first step's time: 2008-07-01 for the last fold.
    assert str(held_out.last_origin.date()) == "2008-07-01"


def test_the_forecast_figures_of_a_report(stored, model_dir, workdir, tmp_path):
    history, _ = split_last_horizon(macro_frame(), HORIZON)  # the training table holds every row up to the last cut-off
    job = forecast_job_dir(tmp_path / "job", history)
    model = _model(job, model_dir)
    evaluation = from_stored(model, stored)
    assert evaluation.primary[0] == "normalized_mean_absolute_error" and evaluation.primary[1] > 0
    assert "rolling-origin validation forecast 24 rows of 3 series after 2 cut-offs" in evaluation.how
    figures = _forecast_figures(evaluation, model)
    assert [f.title for f in figures] == ["forecast against actual", "error by horizon step"]
    forecast = texts(assert_inline_svg(figures[0].svg, "forecast"))
    for words in (*SERIES_NAMES, "held-out horizon", "cut-off", "history", "actual", "forecast", "seasonal naive", "cut-off 2008-07-01"):
        assert words in forecast
    steps = texts(assert_inline_svg(figures[1].svg, "horizon-error"))
    assert "steps after the cut-off" in steps and "normalized mean absolute error" in steps
    assert "24 held-out forecasts" in steps and "seasonal naive" in steps
    assert not evaluation.notes  # the history was found
    # The figure's history panel ends at the cut-off: the held-out horizon is drawn from the stored forecasts only.
    assert figures[0].uses == "12 held-out forecasts of the last fold"


def test_the_page_with_forecast_figures_points_nowhere_outside(stored, model_dir, workdir, tmp_path):
    job = forecast_job_dir(tmp_path / "job")
    model = _model(job, model_dir)
    evaluation = from_stored(model, stored)
    data = ReportData(model=model, submit_name=None, submit_sha256=None, manifest=None, spec_path=None, spec_text=None,
                      compiled={}, automl_board=[], sweep_board=[], curves=[], parameters=[], trial_points=[])
    html = render_page(data, [], evaluation, _forecast_figures(evaluation, model), None).decode()
    assert "forecast against actual" in html and "error by horizon step" in html
    assert not re.search(r"(src|href)=\"(https?:|//)", html) and "<script" not in html
