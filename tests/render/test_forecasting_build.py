"""Render stage, task forecasting: the compiled AutoML job carries Azure's `forecasting:` settings (loaded by
azure-ai-ml 1.35.2 into a ForecastingJob), the pipeline's automl step too, the sweep's trial script validates by
rolling origin with forecasting.py copied beside it, and spec values reach every file quoted.

The data is generated here: one daily series, or three monthly ones (trend plus season plus noise, seeded).
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

from render_specs import load, render_to
from repo import REPO
from test_rendered_artifacts_sdk import check_job_folder

SETTINGS = {
    "time_column_name": "day", "time_series_id_column_names": ["store"], "forecast_horizon": 7, "frequency": "D",
    "target_lags": [1, 7], "target_rolling_window_size": 7, "feature_lags": "auto", "seasonality": 7, "use_stl": "season",
    "short_series_handling_config": "drop", "target_aggregate_function": "sum", "country_or_region_for_holidays": "US",
    "cv_step_size": 3,
}


def series_csv(path: Path, frequency: str, ids: list[str], periods: int, time_column: str = "day", id_column: str = "store") -> Path:
    """Long-format series: time, id, a known feature and `sales` (trend + a 7- or 12-period season + noise)."""
    rng = np.random.default_rng(0)
    season = 7 if frequency == "D" else 12
    parts = []
    for i, key in enumerate(ids):
        t = np.arange(periods)
        sales = 50 + 10 * i + 0.3 * t + 8 * np.sin(2 * np.pi * t / season) + rng.normal(0, 1, periods)
        parts.append(pd.DataFrame({time_column: pd.date_range("2021-01-01", periods=periods, freq=frequency).strftime("%Y-%m-%d"),
                                   id_column: key, "price": rng.uniform(1, 2, periods).round(2), "sales": sales.round(3)}))
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(parts).to_csv(path, index=False)
    return path


def forecasting_spec(name: str = "demand", settings: dict | None = None, data: str = "data/sales.csv", **extra) -> dict:
    return {
        "name": name,
        "description": "Daily demand per store.",
        "dataset": {"path": data, "format": "csv", "target": "sales", "cross_validations": 3},
        "task": "forecasting",
        "metric": "normalized_root_mean_squared_error",
        "forecasting": dict(SETTINGS if settings is None else settings),
        "automl": {"max_trials": 6, "allowed_models": ["LightGBM", "ExponentialSmoothing", "SeasonalNaive"]},
        "sweep": {"model": "lightgbm", "search_space": {"n_estimators": "choice(20, 40)", "learning_rate": "uniform(0.05, 0.2)"},
                  "limits": {"max_total_trials": 2, "max_concurrent_trials": 1}},
        **extra,
    }


def constant(script: str, name: str):
    """The value of a module-level `NAME = literal` line of a generated script."""
    import ast

    line = next(line for line in script.splitlines() if line.startswith(f"{name} = "))
    return ast.literal_eval(line.split(" = ", 1)[1].split("  #", 1)[0])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demand")
    series_csv(folder / "data" / "sales.csv", "D", ["north", "south"], 90)
    spec = load(folder, forecasting_spec())
    files = render_to(spec, folder / "generated")
    job_dir = folder / "generated" / spec.name
    return spec, job_dir, files, check_job_folder(job_dir, files)


def test_automl_job_is_azures_forecasting_job_with_every_setting(built):
    from azure.ai.ml.automl import ForecastingJob

    _, _, _, entities = built
    job = entities["automl_job.yml"]
    assert isinstance(job, ForecastingJob)
    assert job.primary_metric == "NormalizedRootMeanSquaredError" and job.n_cross_validations == 3
    settings = job.forecasting_settings
    loaded = {key: getattr(settings, key) for key in SETTINGS}
    # azure-ai-ml's loader reads its enums case-insensitively and keeps them in lower case, as the spec writes them
    assert loaded == {**SETTINGS, "use_stl": "season", "target_aggregate_function": "sum"}
    assert [m.value for m in job.training.allowed_training_algorithms] == ["LightGBM", "ExponentialSmoothing", "SeasonalNaive"]


def test_the_rest_body_carries_the_forecasting_settings(built):
    _, _, _, entities = built
    body = entities["automl_job.yml"]._to_rest_object().as_dict()["properties"]["taskDetails"]
    settings = body["forecastingSettings"]
    assert body["taskType"] == "Forecasting" and body["primaryMetric"] == "NormalizedRootMeanSquaredError"
    assert body["nCrossValidations"] == {"mode": "Custom", "value": 3}
    assert settings["timeColumnName"] == "day" and settings["timeSeriesIdColumnNames"] == ["store"]
    assert settings["forecastHorizon"] == {"mode": "Custom", "value": 7}
    assert settings["targetLags"] == {"mode": "Custom", "values": [1, 7]}
    assert (settings["frequency"], settings["cvStepSize"], settings["countryOrRegionForHolidays"]) == ("D", 3, "US")
    # Enum values as azure-ai-ml sends what its YAML loader read (`az ml job create` sends the same)
    assert (settings["useStl"], settings["shortSeriesHandlingConfig"], settings["targetAggregateFunction"]) == ("season", "drop", "sum")
    assert (settings["featureLags"], settings["seasonality"]) == ("auto", {"mode": "Custom", "value": 7})


def test_auto_values_load_and_an_auto_step_is_left_to_azure(tmp_path):
    series_csv(tmp_path / "data" / "sales.csv", "MS", ["a", "b", "c"], 48)
    auto = {"time_column_name": "day", "time_series_id_column_names": "store", "forecast_horizon": 3, "target_lags": "auto",
            "target_rolling_window_size": "auto", "seasonality": "auto", "cv_step_size": "auto"}
    spec = load(tmp_path, forecasting_spec(settings=auto))
    files = render_to(spec, tmp_path / "generated")
    job = check_job_folder(tmp_path / "generated" / "demand", files)["automl_job.yml"]
    settings = job.forecasting_settings
    assert (settings.target_lags, settings.target_rolling_window_size, settings.seasonality) == ("auto", "auto", "auto")
    assert settings.time_series_id_column_names == ["store"]  # one id column is written as a list
    assert settings.cv_step_size is None and "cv_step_size" not in files["automl_job.yml"].decode()
    assert settings.frequency is None  # left out: inferred


def test_the_pipelines_automl_step_forecasts_too(built):
    _, _, _, entities = built
    step = entities["pipeline_job.yml"].jobs["automl"]
    assert type(step).__name__ == "ForecastingJob"
    assert step.forecasting_settings.forecast_horizon == 7 and step.forecasting_settings.time_column_name == "day"
    # The select step compares the winners by their metric; it does not time them with rows of the training table,
    # which a forecasting score.py does not take (capc.serving_cost.is_measured).
    select = entities["pipeline_job.yml"].jobs["select_best"].command
    assert "--metric normalized_root_mean_squared_error --goal minimize" in select and "--score" not in select


def test_the_trial_script_rolls_forward_with_forecasting_py_beside_it(built):
    spec, job_dir, files, entities = built
    assert files["src/forecasting.py"] == (REPO / "compiler" / "forecasting.py").read_bytes()
    assert files["src/azure_metrics.py"] == (REPO / "compiler" / "azure_metrics.py").read_bytes()
    train = files["src/train.py"].decode()
    assert "import forecasting" in train and "forecasting.backtest(" in train
    assert constant(train, "FORECASTING") == SETTINGS and constant(train, "CROSS_VALIDATIONS") == 3
    sweep = entities["sweep_job.yml"]
    assert sweep.trial.command.startswith("python train.py --data ${{inputs.training_data}} --target sales --metric normalized_root_mean_squared_error")


def test_other_tasks_get_no_forecasting_module_or_settings(tmp_path):
    from render_specs import base_spec, place_data

    place_data(tmp_path, "bank")
    files = render_to(load(tmp_path, base_spec("bank")), tmp_path / "generated")
    assert "src/forecasting.py" not in files and "forecasting" not in files["automl_job.yml"].decode()


def test_hostile_column_names_reach_the_files_literally(tmp_path):
    time_column, id_column = 'when "it" ${{happened}}', "shop's\nid"
    series_csv(tmp_path / "data" / "sales.csv", "D", ["x", "y"], 60, time_column=time_column, id_column=id_column)
    settings = {"time_column_name": time_column, "time_series_id_column_names": [id_column], "forecast_horizon": 5}
    spec = load(tmp_path, forecasting_spec(settings=settings))
    files = render_to(spec, tmp_path / "generated")
    job = check_job_folder(tmp_path / "generated" / "demand", files)["automl_job.yml"]
    assert job.forecasting_settings.time_column_name == time_column
    assert job.forecasting_settings.time_series_id_column_names == [id_column]
    assert constant(files["src/train.py"].decode(), "FORECASTING") == {"time_column_name": time_column, "time_series_id_column_names": [id_column], "forecast_horizon": 5}


# ---------------------------------------------------------------- the trial, run


@pytest.mark.slow
@pytest.mark.parametrize("frequency, ids, periods", [("D", ["only"], 80), ("MS", ["a", "b", "c"], 48)], ids=["one-daily", "several-monthly"])
def test_the_trial_validates_by_rolling_origin_and_saves_a_forecaster(tmp_path, frequency, ids, periods):
    data = series_csv(tmp_path / "data" / "sales.csv", frequency, ids, periods)
    settings = {"time_column_name": "day", "forecast_horizon": 4, "frequency": frequency,
                **({"time_series_id_column_names": ["store"]} if len(ids) > 1 else {})}
    spec = load(tmp_path, forecasting_spec(settings=settings))
    render_to(spec, tmp_path / "generated")
    src = tmp_path / "generated" / "demand" / "src"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "CAPC_SEED": "3"}
    run = subprocess.run([sys.executable, "train.py", "--data", str(data), "--target", "sales", "--n_estimators", "30",
                          "--output_dir", str(tmp_path / "out")], cwd=src, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    folds = [line for line in run.stdout.splitlines() if line.startswith("fold ")]
    assert [line.split(":")[0] for line in folds] == ["fold 1/3", "fold 2/3", "fold 3/3"]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["metric"] == "normalized_root_mean_squared_error" and 0 < result["value"] < 0.5
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    [run_row] = mlflow.search_runs(search_all_experiments=True).itertuples()
    held = mlflow.artifacts.load_dict(f"{run_row.artifact_uri}/held_out/predictions.json")
    from capc.state.held_out import HeldOutPredictions

    stored = HeldOutPredictions.from_dict(held)  # the local engine's shape, which `capc report` reads
    assert stored.task == "forecasting" and sorted(set(stored.fold_index)) == [0, 1, 2] and set(stored.steps) == {1, 2, 3, 4}
    # Each fold validates on the 4 periods after its origin, every series; the last fold on the data's last 4 periods.
    assert stored.rows == 3 * 4 * len(ids) and max(map(pd.Timestamp, stored.times)) == pd.Timestamp(pd.read_csv(data)["day"].max())
    for fold in range(3):
        times = sorted({t for t, f in zip(stored.times, stored.fold_index) if f == fold})
        assert len(times) == 4 and all(later > earlier for earlier, later in zip(times, times[1:]))
    model = mlflow.pyfunc.load_model(str(tmp_path / "out" / "model"))
    forecaster = model.unwrap_python_model().forecaster
    assert forecaster.settings.horizon == 4 and forecaster.settings.n_folds == 3
    from capc.local.automl.forecast_model import METADATA_KEY, ForecastModel
    from capc.render.forecasting_context import FORECAST_METADATA_KEY

    # The MLmodel's settings are the local engine's, under its key: score.py and the report read either winner alike.
    assert FORECAST_METADATA_KEY == METADATA_KEY
    assert model.metadata.metadata[METADATA_KEY] == ForecastModel(forecaster).describe()
    future = pd.DataFrame({"day": pd.date_range(pd.read_csv(data)["day"].max(), periods=3, freq=frequency)[1:].strftime("%Y-%m-%d"),
                           "store": ids[0], "price": 1.5})
    assert len(model.predict(future)) == 2
