"""The forecasting model core (capc.forecasting): series reading and its errors, rolling-origin folds that never
train on a row later than the rows they validate, seasonal naive, the direct forecaster on one and several series at
daily and monthly frequency, quantiles; and the forecasting metrics of capc.azure_metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capc import azure_metrics
from capc.forecasting import (LEARNERS, SERIES_KEY, ForecastDataError, Forecaster, Settings, backtest, read_series,
                              rolling_origin_folds, seasonal_naive)


def monthly_stores(n_stores: int = 3, months: int = 96, seed: int = 0) -> pd.DataFrame:
    """Stores whose sales trend up with a yearly season: seasonal naive lags the trend by a year."""
    rng = np.random.default_rng(seed)
    frames = []
    for store in range(n_stores):
        t = np.arange(months)
        sales = 100 * (store + 1) + (store + 1) * t + 15 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, months)
        frames.append(pd.DataFrame({"month": pd.date_range("2016-01-01", periods=months, freq="MS").strftime("%Y-%m-%d"),
                                    "store": f"s{store}", "sales": sales}))
    return pd.concat(frames, ignore_index=True)


def daily_visits(days: int = 200, seed: int = 1) -> pd.DataFrame:
    """One series, a weekly pattern on a slow rise."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    visits = 500 + 0.5 * t + 40 * (pd.date_range("2024-01-01", periods=days, freq="D").dayofweek >= 5) + rng.normal(0, 5, days)
    return pd.DataFrame({"day": pd.date_range("2024-01-01", periods=days, freq="D"), "visits": visits})


MONTHLY = Settings(time_column="month", target="sales", horizon=6, series_ids=("store",))
DAILY = Settings(time_column="day", target="visits", horizon=14)


def test_read_series_parses_sorts_and_infers_the_frequency():
    frame = monthly_stores().sample(frac=1.0, random_state=0)
    history = read_series(frame, MONTHLY)
    assert history.attrs["frequency"] == "MS"
    assert pd.api.types.is_datetime64_any_dtype(history["month"])
    for _, group in history.groupby(SERIES_KEY):
        assert group["month"].is_monotonic_increasing


def test_a_gap_is_filled_with_the_last_value_and_duplicates_are_aggregated():
    frame = daily_visits(30).drop(index=[10])
    history = read_series(frame, DAILY)
    assert len(history) == 30 and history["visits"].iloc[10] == history["visits"].iloc[9]
    doubled = pd.concat([frame, frame.head(3)], ignore_index=True)
    with pytest.raises(ForecastDataError, match="more than one row at 2024-01-01.*target_aggregate_function"):
        read_series(doubled, DAILY)
    summed = read_series(doubled, Settings(time_column="day", target="visits", horizon=14, target_aggregate_function="sum"))
    assert summed["visits"].iloc[0] == pytest.approx(2 * frame["visits"].iloc[0])


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(month="not a date"), "time column 'month' is not a datetime: 'not a date' \\(row 1\\)"),
    (lambda f: f.assign(month=np.arange(len(f))), "time column 'month' holds numbers"),
    (lambda f: f.drop(columns=["store"]), "no time series id column 'store'"),
])
def test_bad_data_gives_a_one_line_error(change, message):
    with pytest.raises(ForecastDataError, match=message):
        read_series(change(monthly_stores()), MONTHLY)


def test_a_frequency_pandas_cannot_read_is_refused():
    with pytest.raises(ForecastDataError, match="frequency 'fortnightly-ish' is not a pandas offset alias"):
        Settings(time_column="day", target="visits", horizon=3, frequency="fortnightly-ish")
    with pytest.raises(ForecastDataError, match="no forecast_horizon"):
        Settings.from_azure({"time_column_name": "day"}, target="visits", n_folds=3)


def test_too_short_for_the_folds_says_how_long_it_must_be():
    with pytest.raises(ForecastDataError, match="too short for 3 rolling-origin folds of horizon 14 \\(step 14\\): "
                                                "that needs at least 58 time steps, the longest has 40"):
        rolling_origin_folds(read_series(daily_visits(40), DAILY), DAILY)


@pytest.mark.parametrize("frame, settings", [(monthly_stores(), MONTHLY), (daily_visits(), DAILY),
                                             (monthly_stores(), Settings(time_column="month", target="sales", horizon=4,
                                                                         series_ids=("store",), n_folds=5, cv_step_size=2))])
def test_no_fold_trains_on_a_row_later_than_the_rows_it_validates(frame, settings):
    history = read_series(frame, settings)
    folds = rolling_origin_folds(history, settings)
    assert len(folds) == settings.n_folds
    times = history[settings.time_column].to_numpy()
    for train, valid in folds:
        assert len(train) and len(valid) and not set(train) & set(valid)
        assert times[train].max() < times[valid].min()  # across every series, not only within one
        per_series = history.iloc[valid].groupby(SERIES_KEY).size()
        assert (per_series == settings.horizon).all()
    origins = [times[train].max() for train, _ in folds]
    assert origins == sorted(origins)


def test_seasonal_naive_repeats_the_last_season():
    history = read_series(monthly_stores(1, 24), Settings(time_column="month", target="sales", horizon=15, series_ids=("store",)))
    future = pd.DataFrame({"month": pd.date_range("2018-01-01", periods=15, freq="MS"), "store": "s0"})
    settings = Settings(time_column="month", target="sales", horizon=15, series_ids=("store",))
    naive = seasonal_naive(history, future, settings)
    last_year = history["sales"].to_numpy()[-12:]
    assert np.allclose(naive[:12], last_year) and np.allclose(naive[12:], last_year[:3])


def test_seasonal_naive_answers_in_the_callers_row_order():
    history = read_series(monthly_stores(2, 24), MONTHLY)
    future = pd.DataFrame({"month": ["2018-02-01", "2018-01-01", "2018-01-01"], "store": ["s1", "s1", "s0"]})
    naive = seasonal_naive(history, future, MONTHLY)
    last_year = {k: g["sales"].to_numpy()[-12:] for k, g in history.groupby("store")}
    assert list(naive) == [last_year["s1"][1], last_year["s1"][0], last_year["s0"][0]]


@pytest.mark.parametrize("alias, season", [("h", 24), ("15min", 96), ("D", 7), ("B", 5), ("W-SUN", 52), ("SMS", 24),
                                           ("MS", 12), ("2MS", 6), ("QS", 4), ("YS", 1), ("2D", 1), ("s", 1)])
def test_the_season_follows_the_frequency(alias, season):
    from capc.forecasting import offset, season_length

    assert season_length(DAILY, offset(alias)) == season


@pytest.mark.parametrize("frame, settings", [(monthly_stores(), MONTHLY), (daily_visits(), DAILY)],
                         ids=["several-monthly", "one-daily"])
def test_the_forecaster_beats_seasonal_naive_on_trending_series(frame, settings):
    validated = backtest(frame, settings, "lightgbm")
    model_error = np.abs(validated["actual"] - validated["forecast"]).mean()
    naive_error = np.abs(validated["actual"] - validated["seasonal_naive"]).mean()
    assert model_error < 0.7 * naive_error
    assert set(validated["fold"]) == {0, 1, 2} and validated["step"].between(1, settings.horizon).all()


@pytest.mark.parametrize("learner", [learner for learner in LEARNERS if learner != "lightgbm"])
def test_every_learner_forecasts_each_future_row(learner):
    model = Forecaster(MONTHLY, learner).fit(monthly_stores(), calibrate=False)
    future = pd.DataFrame({"month": ["2024-03-01", "2024-01-01", "2024-02-01"], "store": ["s1", "s0", "s2"]})
    out = model.forecast(future)
    assert list(out.columns) == ["month", "store", "forecast"]
    assert list(out["store"]) == ["s1", "s0", "s2"] and np.isfinite(out["forecast"]).all()
    assert np.array_equal(model.predict(future), out["forecast"].to_numpy())


def test_quantiles_are_ordered_and_come_from_the_validation_residuals():
    model = Forecaster(MONTHLY).fit(monthly_stores())
    assert set(model.residuals_) == set(range(1, 7))
    future = pd.DataFrame({"month": pd.date_range("2024-01-01", periods=6, freq="MS").repeat(3), "store": ["s0", "s1", "s2"] * 6})
    out = model.forecast(future, quantiles=(0.1, 0.5, 0.9))
    assert (out["q0.1"] <= out["q0.5"]).all() and (out["q0.5"] <= out["q0.9"]).all() and (out["q0.1"] < out["q0.9"]).all()
    with pytest.raises(ForecastDataError, match="between 0 and 1"):
        model.forecast(future, quantiles=(1.5,))


def test_context_rows_move_the_origin_and_future_rows_off_the_horizon_are_refused():
    frame = daily_visits()
    model = Forecaster(DAILY).fit(frame.head(150), calibrate=False)
    later = pd.DataFrame({"day": pd.date_range("2024-06-19", periods=3, freq="D")})  # days 171..173
    with pytest.raises(ForecastDataError, match="beyond the 14-step horizon"):
        model.forecast(later)
    out = model.forecast(later, context=frame.iloc[150:170])
    assert np.abs(out["forecast"].to_numpy() - frame["visits"].iloc[170:173].to_numpy()).mean() < 30
    with pytest.raises(ForecastDataError, match="is at or before its last known time"):
        model.forecast(pd.DataFrame({"day": ["2024-01-05"]}))
    with pytest.raises(ForecastDataError, match="time column 'day' is not a datetime"):
        model.forecast(pd.DataFrame({"day": ["soon"]}))


def test_an_unknown_series_needs_context():
    model = Forecaster(MONTHLY).fit(monthly_stores(), calibrate=False)
    with pytest.raises(ForecastDataError, match="series 's9' has no history to forecast from; pass context rows"):
        model.forecast(pd.DataFrame({"month": ["2024-01-01"], "store": ["s9"]}))


def test_settings_from_azure_keys():
    block = {"time_column_name": "quarter", "time_series_id_column_names": ["series"], "forecast_horizon": 4,
             "frequency": "QS", "target_lags": [1, 4], "target_rolling_window_size": "auto", "seasonality": "auto",
             "cv_step_size": 2, "short_series_handling_config": "drop", "target_aggregate_function": "none"}
    settings = Settings.from_azure(block, target="value", n_folds=3)
    assert settings == Settings(time_column="quarter", target="value", horizon=4, series_ids=("series",), frequency="QS",
                                target_lags=(1, 4), cv_step_size=2, short_series="drop")


def test_mape_is_in_percent_and_leaves_out_zero_actuals():
    from sklearn.metrics import mean_absolute_percentage_error

    y, y_pred = np.array([10.0, 20.0, 0.0, 40.0]), np.array([12.0, 18.0, 5.0, 40.0])
    expected = 100 * mean_absolute_percentage_error(y[[0, 1, 3]], y_pred[[0, 1, 3]])
    assert azure_metrics.mean_absolute_percentage_error(y, y_pred) == pytest.approx(expected)
    assert np.isnan(azure_metrics.mean_absolute_percentage_error(np.zeros(3), np.ones(3)))
    scores = azure_metrics.forecasting_scores(y, y_pred, azure_metrics.target_range(y))
    assert scores["normalized_mean_absolute_error"] == pytest.approx(np.abs(y - y_pred).mean() / 40)
    assert set(azure_metrics.PRIMARY_METRICS["forecasting"]) <= set(scores)
