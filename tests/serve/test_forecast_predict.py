"""`capc predict` of a forecasting model: a horizon per series, or the rows of a file, through the generated
forecasting score.py (capc.serve.forecast_batch), with a real model (tests/forecast_models.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from capc.errors import CapcError
from capc.serve.forecast_batch import forecast_csv, parse_quantiles
from forecast_models import HORIZON, SERIES, SERIES_NAMES, TARGET, TIME, forecast_job_dir, macro_frame, save_forecast_model, split_last_horizon


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecast_predict")
    return forecast_job_dir(folder / "job"), save_forecast_model(folder / "model")


def test_a_horizon_of_every_series_after_its_history(job, tmp_path):
    job_dir, model = job
    out = tmp_path / "forecast.csv"
    result = forecast_csv(model, job_dir, out, horizon=HORIZON, quantiles=[0.1, 0.9], model_ref="macro:1")
    table = pd.read_csv(out)
    assert list(table.columns) == [TIME, SERIES, "forecast", "q0.1", "q0.9"]
    assert result.rows == len(SERIES_NAMES) * HORIZON and result.series == len(SERIES_NAMES)
    _, held_out = split_last_horizon(macro_frame())
    # The rows forecast are exactly the held-back last horizon of each series (the history ends right before it).
    expected = held_out[[TIME, SERIES]].sort_values([SERIES, TIME]).reset_index(drop=True)
    pd.testing.assert_frame_equal(table[[TIME, SERIES]].sort_values([SERIES, TIME]).reset_index(drop=True), expected)
    assert (table["q0.1"] <= table["q0.9"]).all() and table["forecast"].notna().all()
    assert "forecast 12 rows of 3 series (the next 4 steps of every series) with macro:1" in result.summary()


def test_the_rows_of_a_file_with_context_rows(job, tmp_path):
    job_dir, model = job
    rows = tmp_path / "future.csv"
    pd.DataFrame({
        TIME: ["2008-07-01", "2008-10-01", "2009-01-01"],
        SERIES: ["realgdp"] * 3,
        TARGET: [13324.6, None, None],  # the first row is an actual: context, not a question
    }).to_csv(rows, index=False)
    out = tmp_path / "forecast.csv"
    result = forecast_csv(model, job_dir, out, input_path=rows)
    table = pd.read_csv(out)
    assert list(table.columns) == [TIME, SERIES, "forecast"]
    assert table[TIME].tolist() == ["2008-10-01", "2009-01-01"] and result.rows == 2


def test_a_bad_time_cell_in_the_file_names_its_row(job, tmp_path):
    job_dir, model = job
    rows = tmp_path / "future.csv"
    rows.write_text(f"{TIME},{SERIES}\n2008-10-01,realgdp\n2009-02-30,realgdp\n")
    out = tmp_path / "forecast.csv"
    with pytest.raises(CapcError) as failure:
        forecast_csv(model, job_dir, out, input_path=rows)
    assert str(failure.value).startswith(f'{rows}: row 2: "2009-02-30" in the time column "quarter" is not a date or time')
    assert not out.exists()


@pytest.mark.parametrize("kwargs, words", [
    ({}, "either --input FILE.csv (the rows to forecast) or --horizon N"),
    ({"horizon": 2, "input_path": "x.csv"}, "not both"),
])
def test_one_source_of_rows(job, tmp_path, kwargs, words):
    job_dir, model = job
    with pytest.raises(CapcError, match=words.replace("(", r"\(").replace(")", r"\)")):
        forecast_csv(model, job_dir, tmp_path / "out.csv", **kwargs)


def test_quantiles_option():
    assert parse_quantiles("0.9,0.1, 0.5") == [0.1, 0.5, 0.9]
    with pytest.raises(CapcError, match="'1.5' is not a number strictly between 0 and 1"):
        parse_quantiles("0.1,1.5")


def _register(workdir, job):
    from capc.state import registry

    job_dir, model = job
    return registry.register(
        model, name="macro", task="forecasting", metric="normalized_mean_absolute_error", value=0.01, goal="minimize",
        source="automl", run_id="0" * 32, spec_sha256="0" * 64, job_dir=str(job_dir),
    )


def test_capc_predict_of_a_registered_forecasting_model(workdir, job):
    import json

    from click.testing import CliRunner

    from capc.cli import cli

    _register(workdir, job)
    result = CliRunner().invoke(cli, ["predict", "macro", "--horizon", "2", "--quantiles", "0.1,0.9", "--output", "f.csv", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"] == "macro:1" and summary["rows"] == 2 * len(SERIES_NAMES) and summary["quantiles"] == [0.1, 0.9]
    assert list(pd.read_csv(workdir / "f.csv").columns) == [TIME, SERIES, "forecast", "q0.1", "q0.9"]
    refused = CliRunner().invoke(cli, ["predict", "macro", "--output", "g.csv"])
    assert refused.exit_code == 1 and "either --input FILE.csv (the rows to forecast) or --horizon N" in refused.stderr
    assert "Traceback" not in refused.output and not (workdir / "g.csv").exists()


def test_bench_refuses_training_rows_for_a_forecasting_endpoint(tmp_path):
    from capc.jobfolder.data import request_rows

    job_dir = forecast_job_dir(tmp_path / "job")
    (job_dir / "automl_job.yml").write_text("task: forecasting\ntarget_column_name: value\n")
    with pytest.raises(CapcError, match="a forecasting endpoint answers forecast requests for the times after each series' history"):
        request_rows(job_dir)
