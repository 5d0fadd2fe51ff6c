"""The local AutoML engine for `task: forecasting` (capc.local.automl.forecast_search): a rolling-origin search on one
and on several series, the model it saves (an MLflow pyfunc that loads without capc and forecasts rows), and the
hand-written Azure forecasting job read for it (in the shape of Azure's documented forecasting job YAML). Small
synthetic series and a few candidates keep these fast; the end-to-end submits are `slow`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from capc import azure_names
from capc.errors import CapcError
from capc.jobfolder.automl_yaml import read_automl_job
from capc.jobfolder.job_yaml import load_job_yaml
from capc.local.automl import AutoMLSettings, run_automl
from capc.local.automl.forecast_model import METADATA_KEY

from test_forecasting_core import daily_visits, monthly_stores


def job(**changes) -> dict:
    """automl_job.yml of a forecasting spec (as the compiled job carries it) for monthly_stores()."""
    data = {"type": "automl", "task": "forecasting", "primary_metric": "normalized_mean_absolute_error",
            "target_column_name": "sales", "n_cross_validations": 3,
            "limits": {"timeout_minutes": 2, "max_trials": 4},
            "forecasting": {"time_column_name": "month", "time_series_id_column_names": ["store"], "forecast_horizon": 6,
                            "frequency": "MS"}}
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return data


@pytest.fixture(scope="module")
def searched():
    candidates = []
    result = run_automl(monthly_stores(), AutoMLSettings.from_job_yaml(job()), on_candidate=candidates.append)
    return result, candidates


def test_the_search_starts_from_the_baselines_and_scores_every_forecasting_metric(searched):
    result, reported = searched
    assert [c.estimator for c in reported] == ["SeasonalNaive", "Naive", "LightGBM", "ElasticNet"]
    assert result.end.limit == "trials"
    for candidate in reported:
        assert set(azure_names.AUTOML_METRICS["forecasting"]) | {"mean_absolute_percentage_error"} <= set(candidate.metrics)
        assert candidate.value == candidate.metrics["normalized_mean_absolute_error"]
    naive = reported[0].value
    assert result.best.estimator in ("LightGBM", "ElasticNet") and result.best.value < 0.7 * naive
    notes = "\n".join(result.notes)
    assert "skipped AutoArima: the local engine has no learner for it" in notes
    assert "3 rolling-origin folds of 6 steps (frequency MS" in notes


def test_held_out_forecasts_carry_series_time_and_step(searched):
    result, _ = searched
    held = result.held_out
    assert held.task == "forecasting" and held.split == "cross_validation" and held.folds == 3
    assert held.rows == 3 * 3 * 6  # folds x series x horizon
    assert set(held.series) == {"s0", "s1", "s2"} and set(held.steps) == set(range(1, 7)) and set(held.fold_index) == {0, 1, 2}
    assert max(held.times) == "2023-12-01T00:00:00"  # the last fold validates the last 6 months


def test_the_saved_model_loads_without_capc_and_forecasts_rows(searched, tmp_path):
    result, _ = searched
    result.save_mlflow_model(tmp_path / "model")
    metadata = yaml.safe_load((tmp_path / "model" / "MLmodel").read_text())["metadata"][METADATA_KEY]
    assert metadata["time_column"] == "month" and metadata["series_ids"] == ["store"] and metadata["horizon"] == 6
    assert metadata["frequency"] == "MS" and metadata["quantiles"] is True
    future = pd.DataFrame({"month": ["2024-02-01", "2024-01-01"], "store": ["s2", "s0"]})
    future.to_csv(tmp_path / "future.csv", index=False)
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["capc"] = None  # an Azure scoring container has no capc
        import mlflow.pyfunc, pandas as pd
        model = mlflow.pyfunc.load_model({str(tmp_path / "model")!r})
        future = pd.read_csv({str(tmp_path / "future.csv")!r})
        forecaster = model.unwrap_python_model().forecaster
        print(json.dumps({{"predict": list(model.predict(future)),
                           "quantiles": forecaster.forecast(future, quantiles=(0.1, 0.9))[["q0.1", "q0.9"]].values.tolist()}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.allclose(answer["predict"], result.model.predict(future))
    assert all(low < high for low, high in answer["quantiles"])


def test_one_daily_series_is_searched_too():
    data = job(target_column_name="visits", primary_metric="normalized_root_mean_squared_error",
               limits={"max_trials": 3}, forecasting={"time_column_name": "day", "forecast_horizon": 14})
    data["forecasting"].pop("time_series_id_column_names")
    data["forecasting"].pop("frequency")
    result = run_automl(daily_visits(), AutoMLSettings.from_job_yaml(data))
    assert result.best.estimator == "LightGBM" and result.held_out.rows == 3 * 14
    assert set(result.held_out.series) == {""}
    assert "frequency D, season 7" in "\n".join(result.notes)


def test_allowed_algorithms_and_unhonoured_settings_are_named():
    data = job(training={"allowed_training_algorithms": ["seasonal_naive", "auto_arima"], "enable_stack_ensemble": False},
               forecasting={"use_stl": "season", "country_or_region_for_holidays": "US", "target_lags": [1, 12]})
    result = run_automl(monthly_stores(2, 48), AutoMLSettings.from_job_yaml(data))
    assert [c.estimator for c in result.candidates] == ["SeasonalNaive"]
    notes = "\n".join(result.notes)
    for text in ("skipped AutoArima", "forecasting.use_stl is not honoured locally",
                 "forecasting.country_or_region_for_holidays is not honoured locally", "lags [1, 12]",
                 "target_rolling_window_size left out"):
        assert text in notes


def test_a_learner_that_fails_is_a_failed_candidate_and_the_search_goes_on(monkeypatch):
    from capc import forecasting

    real = forecasting.backtest

    def broken_lightgbm(history, settings, learner="lightgbm", params=None):
        if learner == "lightgbm":
            raise RuntimeError("out of leaves")
        return real(history, settings, learner, params)

    monkeypatch.setattr(forecasting, "backtest", broken_lightgbm)
    result = run_automl(monthly_stores(2, 48), AutoMLSettings.from_job_yaml(job()))
    failed = [c for c in result.candidates if c.status == "failed"]
    assert [c.estimator for c in failed] == ["LightGBM"] and failed[0].params["error"] == "RuntimeError: out of leaves"
    assert result.best.estimator == "ElasticNet"


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["store"]), "the forecasting training data: the data has no time series id column 'store'"),
    (lambda f: f.assign(month="soon"), "time column 'month' is not a datetime"),
    (lambda f: f.head(20), "too short for 3 rolling-origin folds"),
])
def test_data_a_forecast_cannot_be_made_from_is_a_capc_error(change, message):
    with pytest.raises(CapcError, match=message):
        run_automl(change(monthly_stores()), AutoMLSettings.from_job_yaml(job()))


# ---------------------------------------------------------------- the hand-written job (Azure's documented shape)

FORECAST_JOB = """\
    $schema: https://azuremlschemas.azureedge.net/latest/autoMLForecastingJob.schema.json
    type: automl
    experiment_name: store-sales-forecast
    description: Monthly store sales, forecast six months ahead
    compute: azureml:cpu-cluster
    task: forecasting
    primary_metric: normalized_root_mean_squared_error
    log_verbosity: info
    target_column_name: sales
    n_cross_validations: auto
    training_data:
      path: ./train-sales
      type: mltable
    test_data:
      path: ./test-sales
      type: mltable
    limits:
      timeout_minutes: 15
      max_trials: 3
      max_concurrent_trials: 2
      trial_timeout_minutes: 5
      enable_early_termination: true
    forecasting:
      time_column_name: month
      time_series_id_column_names: [store]
      forecast_horizon: 6
      frequency: MS
      target_lags: auto
      target_rolling_window_size: auto
      use_stl: season
    training:
      enable_model_explainability: true
      enable_stack_ensemble: false
      blocked_training_algorithms: [prophet, auto_arima]
"""


def mltable(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "data.csv", index=False)
    (folder / "MLTable").write_text(yaml.safe_dump({"paths": [{"file": "./data.csv"}],
                                                    "transformations": [{"read_delimited": {"delimiter": ","}}]}))
    return folder


@pytest.fixture
def sales_job(workdir: Path) -> Path:
    frame = monthly_stores()
    cut = pd.to_datetime(frame["month"]) < "2023-07-01"
    mltable(workdir / "train-sales", frame[cut])
    mltable(workdir / "test-sales", frame[~cut])
    path = workdir / "forecast_job.yml"
    path.write_text(textwrap.dedent(FORECAST_JOB))
    return path


def test_documented_forecasting_job_is_read_for_the_local_engine(sales_job):
    automl = read_automl_job(load_job_yaml(sales_job))
    assert automl.task == "forecasting" and set(automl.tables) == {"training_data", "test_data"}
    assert "training.enable_model_explainability is not honoured locally" in "\n".join(automl.notes)
    settings = AutoMLSettings.from_job_yaml(automl.data)
    assert settings.forecasting["forecast_horizon"] == 6 and settings.blocked_algorithms == ("Prophet", "AutoArima")


def test_azure_loads_the_documented_forecasting_job(sales_job):
    from azure.ai.ml import load_job

    loaded = load_job(sales_job)
    assert loaded.task_type.lower() == "forecasting"
    assert loaded.forecasting_settings.forecast_horizon == 6


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("  forecast_horizon: 6\n", ""), "needs `forecasting:` with time_column_name and forecast_horizon"),
    (lambda text: text.replace("  use_stl: season\n", "  use_stll: season\n"), "`forecasting.use_stll` is not a key"),
    (lambda text: text.replace("test_data:\n  path: ./test-sales\n  type: mltable\n", "test_data_size: 0.2\n"),
     "test_data_size draws test rows at random"),
])
def test_a_forecasting_job_azure_would_refuse_is_refused(sales_job, edit, message):
    sales_job.write_text(edit(sales_job.read_text()))
    with pytest.raises(CapcError, match=message):
        read_automl_job(load_job_yaml(sales_job))


def test_a_forecasting_jobs_ffill_imputer_fills_each_series_from_its_last_value(sales_job):
    from capc.local.automl_job import _tables

    frame = monthly_stores().assign(price=lambda f: np.arange(len(f), dtype=float))
    frame.loc[[5, 100], "price"] = np.nan  # s0's sixth month, s1's fifth
    mltable(sales_job.parent / "train-sales", frame.sample(frac=1.0, random_state=0))  # rows out of time order
    text = sales_job.read_text() + textwrap.dedent("""\
        featurization:
          mode: custom
          transformer_params:
            imputer:
              - fields: ["price"]
                parameters:
                  strategy: ffill
    """)
    sales_job.write_text(text)
    tables = _tables(read_automl_job(load_job_yaml(sales_job)))
    filled = tables.training_data.set_index(["store", "month"])["price"]
    assert filled[("s0", "2016-06-01")] == 4.0 and filled[("s1", "2016-05-01")] == 99.0
    regression = {k: v for k, v in yaml.safe_load(text).items() if k != "forecasting"} | {"task": "regression"}
    sales_job.write_text(yaml.safe_dump(regression))
    with pytest.raises(CapcError, match="strategy `ffill` is not one Azure takes"):
        read_automl_job(load_job_yaml(sales_job))


@pytest.mark.slow
def test_documented_forecasting_job_runs_locally_and_scores_its_test_horizon(sales_job):
    from click.testing import CliRunner

    from capc.cli import cli

    ran = CliRunner().invoke(cli, ["submit", str(sales_job), "--json", "--register", "store-sales"])
    assert ran.exit_code == 0, ran.output
    result = json.loads(ran.stdout)
    assert result["task"] == "forecasting" and result["candidates"] == 3
    assert result["test"]["rows"] == 18 and result["test"]["metrics"]["normalized_root_mean_squared_error"] < 0.2
    assert any("forecasting.use_stl is not honoured locally" in note for note in result["notes"])
    assert result["model"]["name"] == "store-sales"


# ---------------------------------------------------------------- the compiled spec (capc submit of a forecasting spec)


@pytest.mark.slow
def test_a_forecasting_spec_submits_registers_and_forecasts_its_held_back_horizon(workdir):
    """The macro data's first held-back horizon, forecast by the model `capc submit` registers (AutoML only, a short
    budget), is closer than seasonal naive's."""
    import importlib.util

    import mlflow.pyfunc
    from click.testing import CliRunner

    from capc.cli import cli
    from capc.forecasting import Settings, seasonal_naive
    from repo import REPO

    module_spec = importlib.util.spec_from_file_location("make_macro", REPO / "specs" / "data" / "macro" / "make_macro.py")
    make_macro = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(make_macro)
    full = make_macro.full_series()
    cut = np.sort(full["quarter"].unique())[-make_macro.HELD_BACK]
    full[full["quarter"] < cut].to_csv(workdir / "macro_train.csv", index=False, date_format="%Y-%m-%d")
    spec = {"name": "macro-test", "description": "US quarterly macro series.",
            "dataset": {"path": "macro_train.csv", "format": "csv", "target": "value", "cross_validations": 3},
            "task": "forecasting", "metric": "normalized_mean_absolute_error",
            "forecasting": {"time_column_name": "quarter", "time_series_id_column_names": ["series"], "forecast_horizon": 4,
                            "frequency": "QS"},
            "automl": {"timeout_minutes": 1, "max_trials": 6},
            "sweep": {"model": "lightgbm", "search_space": {"n_estimators": "choice(50, 100)"},
                      "limits": {"max_total_trials": 1, "max_concurrent_trials": 1}}}
    (workdir / "macro.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ran = CliRunner().invoke(cli, ["submit", str(workdir / "macro.yaml"), "--only", "automl", "--json"])
    assert ran.exit_code == 0, ran.output
    result = json.loads(ran.stdout[ran.stdout.index("{"):])
    assert result["winner"] == "automl" and result["model"]["name"] == "macro-test"
    horizon = full[(full["quarter"] >= cut)].groupby("series").head(4)
    future = horizon[["quarter", "series"]].reset_index(drop=True)
    predicted = mlflow.pyfunc.load_model(result["model"]["model_dir"]).predict(future)
    naive = seasonal_naive(full[full["quarter"] < cut], future, Settings(time_column="quarter", target="value", horizon=4,
                                                                         series_ids=("series",), frequency="QS"))
    actual = horizon["value"].to_numpy()
    assert np.abs(actual - predicted).mean() < 0.85 * np.abs(actual - naive).mean()
