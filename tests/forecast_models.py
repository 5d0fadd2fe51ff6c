"""A small real forecasting MLflow model, for the tests that serve, predict with or report on one (tests/serve, tests/report).

Three quarterly US macro series from statsmodels' bundled macrodata (real GDP, consumption, investment; 1959-2009) in
long format, a capc Forecaster (compiler/forecasting.py) fitted on all but the last horizon of each series, saved as
the MLflow pyfunc model FORECAST.md fixes: `mlflow.pyfunc.load_model(dir).predict(frame)` forecasts the frame's rows,
`.unwrap_python_model().forecaster` is the Forecaster. The pickle carries its code by value, so a model server loads it
without capc installed, as on Azure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TIME, SERIES, TARGET = "quarter", "series", "value"
SERIES_NAMES = ("realcons", "realgdp", "realinv")
HORIZON = 4
FREQUENCY = "QS"


def macro_frame() -> pd.DataFrame:
    """quarter (date text), series, value: 203 quarters of each series, sorted by series then quarter."""
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data
    quarters = pd.PeriodIndex.from_fields(year=data["year"].astype(int), quarter=data["quarter"].astype(int), freq="Q")
    dates = quarters.to_timestamp(how="start").strftime("%Y-%m-%d")
    parts = [pd.DataFrame({TIME: dates, SERIES: name, TARGET: data[name].to_numpy()}) for name in SERIES_NAMES]
    return pd.concat(parts, ignore_index=True)


def split_last_horizon(frame: pd.DataFrame, horizon: int = HORIZON) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, the last `horizon` rows of each series)."""
    last = frame.groupby(SERIES)[TIME].transform(lambda t: t.rank(method="first", ascending=False) <= horizon)
    return frame[~last].reset_index(drop=True), frame[last].reset_index(drop=True)


def settings(horizon: int = HORIZON):
    from capc.forecasting import Settings

    return Settings(time_column=TIME, target=TARGET, horizon=horizon, series_ids=(SERIES,), frequency=FREQUENCY)


def fitted_forecaster(history: pd.DataFrame | None = None):
    from capc.forecasting import Forecaster

    if history is None:
        history, _ = split_last_horizon(macro_frame())
    return Forecaster(settings()).fit(history)


def save_forecast_model(target: Path, forecaster=None) -> Path:
    """The fitted Forecaster saved as the local engine registers one (capc.local.automl.forecast_model: an MLflow pyfunc
    model, its settings in the MLmodel metadata, pickled by value)."""
    from capc.local.automl.forecast_model import ForecastModel, save_forecast_model as save

    return save(ForecastModel(forecaster or fitted_forecaster()), target)


def registered_forecast_model(home: Path, name: str, version: int = 1, forecaster=None) -> Path:
    """The model as the registry keeps it: $CAPC_HOME/registry/<name>/<version>/model."""
    target = home / "registry" / name / str(version) / "model"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_forecast_model(target, forecaster)
    (target.parent / "registration.json").write_text(json.dumps({"name": name, "version": version, "source": "test fixture"}))
    return target


def forecast_job_dir(target: Path, history: pd.DataFrame | None = None) -> Path:
    """generated/<name>/ as far as serving a forecast needs it: the training CSV and its data/MLTable, score.py and
    sample_request.json, rendered by capc's own render stage (capc.render.forecast_serving and templates/score_forecast.py.j2)."""
    from types import SimpleNamespace

    from capc.render.forecast_serving import forecast_serving
    from capc.render.render import environment

    target.mkdir(parents=True, exist_ok=True)
    if history is None:
        history, _ = split_last_horizon(macro_frame())
    history.to_csv(target / "macro_train.csv", index=False)
    spec = SimpleNamespace(
        task="forecasting", path=target / "macro.yaml",
        data={"dataset": {"path": "macro_train.csv", "format": "csv"},
              "forecasting": {"time_column_name": TIME, "time_series_id_column_names": [SERIES],
                              "forecast_horizon": HORIZON, "frequency": FREQUENCY}},
    )
    context = {"name": "macro", "forecast": forecast_serving(spec, {"remote": False}),
               "dataset": {"path_from_data_dir": "../macro_train.csv", "format": "csv", "drop": []}}
    env = environment()
    (target / "data").mkdir(exist_ok=True)
    (target / "data" / "MLTable").write_text(env.get_template("MLTable.j2").render(context), encoding="utf-8")
    for path, template in (("score.py", "score_forecast.py.j2"), ("sample_request.json", "sample_request_forecast.json.j2")):
        (target / path).write_text(env.get_template(template).render(context), encoding="utf-8")
    return target


def rolling_origin_held_out(frame: pd.DataFrame | None = None, cutoffs: int = 2):
    """Held-out predictions as the local engine stores a forecasting winner's (capc.state.held_out): the forecasts of a
    rolling-origin backtest (capc.forecasting.backtest) over the last `cutoffs` horizons, with each row's time,
    series, step, fold and seasonal-naive forecast."""
    from dataclasses import replace

    from capc import forecasting
    from capc.state.held_out import HeldOutPredictions, plain

    frame = macro_frame() if frame is None else frame
    validated = forecasting.backtest(frame, replace(settings(), n_folds=cutoffs))
    return HeldOutPredictions(
        task="forecasting", split="cross_validation", folds=cutoffs, fraction=None, seed=None, training_rows=len(frame),
        y_true=plain(validated["actual"]), y_pred=plain(validated["forecast"]),
        y_range=float(frame[TARGET].max() - frame[TARGET].min()),
        times=[t.isoformat() for t in pd.DatetimeIndex(validated[TIME])], series=validated[forecasting.SERIES_KEY].astype(str).tolist(),
        steps=plain(validated["step"]), fold_index=plain(validated["fold"]), baseline=plain(validated["seasonal_naive"]),
    )
