"""Shared rule: the forecasting model core - series reading, rolling-origin folds, seasonal naive, and a direct
multi-step forecaster over lag and rolling features.

Self-contained like azure_metrics.py (numpy, pandas, scikit-learn, LightGBM; XGBoost for its learner; no capc):
`capc build` copies it into src/ for the trial script and score.py, and the registered model pickles it by value.

Direct strategy, one pooled model for every series and horizon step. Each series is put on its time grid (gaps carry
the last value, as Azure's default imputation; duplicates combined by `target_aggregate_function`, else refused).
A training row is an (origin t, step h) pair: the series' recent values RELATIVE to its value at t (lags, rolling
mean/std, drift, the value a season before t+h) over its scale (mean absolute step), h, the calendar of t+h and known
numeric features at t+h; the target is (y[t+h] - y[t]) / scale. Trees cannot extrapolate a level they never saw; a
trending series' changes stay in range. Quantiles: the scaled residuals of a rolling-origin backtest, by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

SERIES_KEY = "__series__"
# Season length of a pandas offset's base name (the first letters of its alias); 1: no season.
# Steps in a year of a calendar offset's base (its alias without B/C and anchors); days, hours ...: see season_length.
STEPS_PER_YEAR = {"W": 52, "SM": 24, "M": 12, "Q": 4}
AGGREGATES = ("sum", "max", "min", "mean")
SHORT_SERIES = ("auto", "pad", "drop", "none")
# Regression learners over the features: learner -> (module, class, defaults). Those in SCALED see standardized
# features; all but LightGBM and XGBoost see a missing lag as 0 ("as the last value").
_FOREST = dict(n_estimators=100, min_samples_leaf=3, max_features=0.7, random_state=0, n_jobs=1)
ESTIMATORS = {
    "lightgbm": ("lightgbm", "LGBMRegressor", dict(n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=10,
                 subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, random_state=0, n_jobs=1, verbose=-1)),
    "xgboost": ("xgboost", "XGBRegressor", dict(n_estimators=300, learning_rate=0.05, max_depth=4, subsample=0.8,
                                                random_state=0, n_jobs=1)),
    "gradientboosting": ("sklearn.ensemble", "GradientBoostingRegressor", dict(n_estimators=100, max_depth=3, subsample=0.8,
                                                                               random_state=0)),
    "extratrees": ("sklearn.ensemble", "ExtraTreesRegressor", _FOREST),
    "randomforest": ("sklearn.ensemble", "RandomForestRegressor", _FOREST),
    "decisiontree": ("sklearn.tree", "DecisionTreeRegressor", dict(min_samples_leaf=5, random_state=0)),
    "elasticnet": ("sklearn.linear_model", "ElasticNet", dict(alpha=0.01, l1_ratio=0.5, max_iter=5000)),
    "lassolars": ("sklearn.linear_model", "LassoLars", dict(alpha=0.001)),
    "sgd": ("sklearn.linear_model", "SGDRegressor", dict(alpha=0.001, random_state=0)),
    "knn": ("sklearn.neighbors", "KNeighborsRegressor", dict(n_neighbors=10, weights="distance")),
}
SCALED = ("elasticnet", "lassolars", "sgd", "knn")
NATIVE_MISSING = ("lightgbm", "xgboost")
LEARNERS = (*ESTIMATORS, "seasonal_naive")
MAX_ORIGINS_PER_SERIES = 2000  # training rows: the most recent origins of a long series are the relevant ones


class ForecastDataError(ValueError):
    """Data a forecast cannot be made from; the message says what and where, in one line."""


@dataclass(frozen=True)
class Settings:
    time_column: str
    target: str
    horizon: int
    series_ids: tuple[str, ...] = ()
    frequency: str | None = None
    target_lags: tuple[int, ...] | None = None
    rolling_window: int | None = None
    seasonality: int | None = None
    cv_step_size: int | None = None
    n_folds: int = 3
    target_aggregate_function: str | None = None
    short_series: str = "auto"

    def __post_init__(self) -> None:
        if int(self.horizon) < 1:
            raise ForecastDataError(f"forecast_horizon must be a positive whole number, not {self.horizon!r}")
        if self.frequency is not None:
            offset(self.frequency)
        for name, value, allowed in (("target_aggregate_function", self.target_aggregate_function, AGGREGATES),
                                     ("short_series_handling_config", self.short_series, SHORT_SERIES)):
            if value is not None and value not in allowed:
                raise ForecastDataError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if self.n_folds < 1:
            raise ForecastDataError(f"the rolling-origin validation needs at least one fold, not {self.n_folds}")

    @classmethod
    def from_azure(cls, block: dict, *, target: str, n_folds: int) -> Settings:
        """Settings from Azure's `forecasting:` keys ("auto" and "none" values mean capc's automatic choice)."""
        def auto(key):
            value = block.get(key)
            return None if value is None or str(value).lower() in ("auto", "none") else value

        def number(key):
            return None if auto(key) is None else int(auto(key))

        if not block.get("time_column_name"):
            raise ForecastDataError("the forecasting settings have no time_column_name")
        if block.get("forecast_horizon") in (None, "auto"):
            raise ForecastDataError("the forecasting settings have no forecast_horizon (a number of time steps)")
        lags = auto("target_lags")
        lags = None if lags is None else lags if isinstance(lags, (list, tuple)) else [lags]
        ids = block.get("time_series_id_column_names") or ()
        return cls(
            time_column=str(block["time_column_name"]), target=str(target), horizon=int(block["forecast_horizon"]),
            series_ids=(ids,) if isinstance(ids, str) else tuple(str(c) for c in ids), frequency=auto("frequency"),
            target_lags=None if lags is None else tuple(int(v) for v in lags), rolling_window=number("target_rolling_window_size"),
            seasonality=number("seasonality"), cv_step_size=number("cv_step_size"),
            n_folds=int(n_folds), target_aggregate_function=auto("target_aggregate_function"),
            short_series=str(block.get("short_series_handling_config") or "auto").lower(),
        )


def offset(frequency: str) -> pd.DateOffset:
    """A pandas offset from its alias; a ForecastDataError for one pandas cannot read."""
    try:
        return pd.tseries.frequencies.to_offset(frequency)
    except (ValueError, TypeError):
        raise ForecastDataError(f"frequency {frequency!r} is not a pandas offset alias (e.g. D, W, MS, QS, h)") from None


def span_of(freq: pd.DateOffset) -> pd.Timedelta | None:
    """The fixed length of a step (business days count as one day); None for weeks, months, quarters, years."""
    try:
        return pd.Timedelta(freq.nanos, "ns")
    except ValueError:
        return pd.Timedelta(days=freq.n) if freq.name in ("B", "C") else None


def season_length(settings: Settings, freq: pd.DateOffset) -> int:
    """The settings' seasonality, else a day of steps under a day, a week of days (5 business days), a year of weeks,
    half-months, months or quarters; 1 (no season) where the steps do not divide it."""
    if settings.seasonality is not None:
        return max(1, int(settings.seasonality))
    span, day = span_of(freq), pd.Timedelta(days=1)
    if span is not None:
        whole = day if span < day else 7 * day if span <= 7 * day else None
        season = whole // span if whole is not None and whole % span == pd.Timedelta(0) else 1
        return 5 if freq.name in ("B", "C") and freq.n == 1 else int(season) if 1 < season <= 1440 else 1
    base = freq.name.split("-")[0].lstrip("BC").rstrip("SE") or "Y"
    per_year = STEPS_PER_YEAR.get(base, 1)
    return per_year // freq.n if per_year % freq.n == 0 else 1


def target_lags(settings: Settings, season: int) -> tuple[int, ...]:
    """Settings' lags, else 1..season (at least 1..3, at most 1..24), one and two seasons back."""
    if settings.target_lags:
        return tuple(sorted({int(v) for v in settings.target_lags if int(v) >= 1}))
    return tuple(sorted({*range(1, min(max(3, season), 24) + 1), *([season, 2 * season] if season > 1 else [])}))


def rolling_window(settings: Settings, season: int) -> int:
    return max(2, int(settings.rolling_window or (season if season > 1 else 3)))


# ---------------------------------------------------------------- reading


def series_keys(frame: pd.DataFrame, settings: Settings) -> pd.Series:
    """One hashable key per row: the id columns' values as text joined ("" for a single series)."""
    if not settings.series_ids:
        return pd.Series("", index=frame.index)
    first, *others = (frame[c].astype(str) for c in settings.series_ids)
    return first.str.cat(others, sep="|") if others else first


def check_columns(frame: pd.DataFrame, settings: Settings, *, need_target: bool) -> None:
    wanted = [settings.time_column, *settings.series_ids] + ([settings.target] if need_target else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        role = {settings.time_column: "time column", settings.target: "target column"}
        named = ", ".join(f"{role.get(c, 'time series id column')} {c!r}" for c in missing)
        raise ForecastDataError(f"the data has no {named} (its columns: {', '.join(map(str, frame.columns))})")


def parse_times(values: pd.Series, column: str) -> pd.Series:
    """The time column as datetimes; a ForecastDataError naming the first value that is not one."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise ForecastDataError(f"time column {column!r} holds numbers ({values.dtype}), not dates or times")
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna()
    if bad.any() or values.isna().any():
        first = values[bad | values.isna()].iloc[0]
        row = int(np.flatnonzero(bad | values.isna())[0]) + 1
        raise ForecastDataError(f"time column {column!r} is not a datetime: {first!r} (row {row}) is not a date or time")
    return parsed


def infer_frequency(frame: pd.DataFrame, settings: Settings) -> pd.DateOffset:
    """The settings' frequency, else what pandas infers from the longest series (else its commonest step)."""
    if settings.frequency:
        return offset(settings.frequency)
    longest = frame.groupby(SERIES_KEY, sort=False)[settings.time_column].count().idxmax()
    times = pd.DatetimeIndex(frame.loc[frame[SERIES_KEY] == longest, settings.time_column].drop_duplicates().sort_values())
    if len(times) < 3:
        raise ForecastDataError("the frequency cannot be inferred from fewer than 3 time steps; set frequency")
    alias = pd.infer_freq(times)
    if alias is None:
        steps = pd.Series(np.diff(times.values)).mode()
        if steps.empty or steps.iloc[0] <= pd.Timedelta(0):
            raise ForecastDataError("the frequency cannot be inferred from the time column; set frequency")
        return pd.tseries.frequencies.to_offset(pd.Timedelta(steps.iloc[0]))
    return offset(alias)


def frequency_of(series: pd.DataFrame, settings: Settings) -> pd.DateOffset:
    """The frequency read_series found (pandas keeps it in `.attrs` through most, not all, operations)."""
    return offset(series.attrs.get("frequency") or settings.frequency or infer_frequency(series, settings).freqstr)


def read_series(frame: pd.DataFrame, settings: Settings, *, need_target: bool = True) -> pd.DataFrame:
    """The rows parsed (datetimes, numeric target), duplicates aggregated, each series on its regular grid and
    sorted by series then time, with a SERIES_KEY column. The frequency found is in `.attrs["frequency"]`."""
    check_columns(frame, settings, need_target=need_target)
    frame = frame.copy()
    frame[settings.time_column] = parse_times(frame[settings.time_column], settings.time_column)
    if need_target:
        target = pd.to_numeric(frame[settings.target], errors="coerce")
        if target.isna().all():
            raise ForecastDataError(f"target column {settings.target!r} has no numbers")
        frame[settings.target] = target.astype(float)
    frame[SERIES_KEY] = series_keys(frame, settings)
    freq = infer_frequency(frame, settings)
    if need_target:
        frame = _aggregated(frame, settings, freq)
        frame = pd.concat([_on_grid(group, settings, freq, key) for key, group in frame.groupby(SERIES_KEY, sort=True)],
                          ignore_index=True)
    else:
        frame = frame.sort_values([SERIES_KEY, settings.time_column], kind="stable").reset_index(drop=True)
    frame.attrs["frequency"] = freq.freqstr
    return frame


def _aggregated(frame: pd.DataFrame, settings: Settings, freq: pd.DateOffset) -> pd.DataFrame:
    how = settings.target_aggregate_function
    if how is None:
        repeated = frame.duplicated([SERIES_KEY, settings.time_column])
        if repeated.any():
            row = frame[repeated].iloc[0]
            raise ForecastDataError(
                f"series {_name(row[SERIES_KEY])} has more than one row at {row[settings.time_column]}; "
                "set target_aggregate_function (sum, mean, min or max) to combine them")
        return frame
    # Rows of one period of the grid combined (pandas' resample labels each period as the frequency does).
    others = [c for c in frame.columns if c not in (SERIES_KEY, settings.time_column)]
    rules = {c: (how if c == settings.target else "mean" if pd.api.types.is_numeric_dtype(frame[c]) else "last")
             for c in others}
    parts = []
    for key, group in frame.groupby(SERIES_KEY, sort=True):
        combined = group.set_index(settings.time_column).resample(freq).agg(rules)
        combined[SERIES_KEY] = key
        parts.append(combined.reset_index())
    return pd.concat(parts, ignore_index=True)


def _on_grid(group: pd.DataFrame, settings: Settings, freq: pd.DateOffset, key: str) -> pd.DataFrame:
    """One series on its regular time grid, gaps filled with the last value (the first one backwards)."""
    group = group.sort_values(settings.time_column, kind="stable")
    times = pd.DatetimeIndex(group[settings.time_column])
    grid = pd.date_range(times[0], times[-1], freq=freq)
    off_grid = times.difference(grid)
    if len(off_grid):
        raise ForecastDataError(
            f"series {_name(key)}: time {off_grid[0]} is not on the {freq.freqstr} grid that starts at {times[0]}; "
            "set frequency to the data's own, or target_aggregate_function to combine rows into periods")
    group = group.set_index(settings.time_column).reindex(grid)
    group.index.name = settings.time_column
    group = group.ffill().bfill()
    return group.reset_index()


def _name(key: str) -> str:
    return repr(key) if key else "(the only one)"


# ---------------------------------------------------------------- folds and baselines


def _step_size(settings: Settings) -> int:
    return max(1, int(settings.cv_step_size or settings.horizon))


def min_training_length(settings: Settings) -> int:
    """The fewest steps a series may have before its first validation origin."""
    return settings.horizon + 2


def fold_cutoffs(frame: pd.DataFrame, settings: Settings) -> list[pd.Timestamp]:
    """The origin of each fold, oldest first: the last training time; each validates the `horizon` steps after."""
    freq, end, step = frequency_of(frame, settings), frame[settings.time_column].max(), _step_size(settings)
    return [end - freq * (settings.horizon + back * step) for back in reversed(range(settings.n_folds))]


def rolling_origin_folds(frame: pd.DataFrame, settings: Settings) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, validation rows) positions in `frame` (as read_series returns it), oldest fold first.
    One time origin for every series: a fold trains on rows up to its origin and validates on the `horizon`
    steps after it, so no fold trains on a row later than any row it validates on."""
    freq, times, folds = frequency_of(frame, settings), frame[settings.time_column], []
    for cutoff in fold_cutoffs(frame, settings):
        train = np.flatnonzero((times <= cutoff).to_numpy())
        valid = np.flatnonzero(((times > cutoff) & (times <= cutoff + freq * settings.horizon)).to_numpy())
        lengths = frame.iloc[train].groupby(SERIES_KEY).size()
        long_enough = set(lengths.index[lengths >= min_training_length(settings)])
        valid_keys = frame[SERIES_KEY].iloc[valid]
        short = sorted(set(valid_keys) - long_enough)
        if not long_enough or (short and settings.short_series == "none"):
            total = settings.horizon + (settings.n_folds - 1) * _step_size(settings) + min_training_length(settings)
            which = f"series {_name(short[0])} is" if long_enough else "the series are"
            raise ForecastDataError(
                f"{which} too short for {settings.n_folds} rolling-origin folds of horizon {settings.horizon} "
                f"(step {_step_size(settings)}): that needs at least {total} time steps, the longest has "
                f"{frame.groupby(SERIES_KEY).size().max()}; lower cross_validations or forecast_horizon")
        # A series too short to train on before this origin is left out of its validation (Azure: short series).
        folds.append((train, valid[valid_keys.isin(long_enough).to_numpy()]))
    return folds


def future_rows(future: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Rows to forecast, in their own order: times parsed, series keyed (no grid: any rows of the horizon)."""
    rows = future.reset_index(drop=True)
    check_columns(rows, settings, need_target=False)
    rows[settings.time_column] = parse_times(rows[settings.time_column], settings.time_column)
    return rows.assign(**{SERIES_KEY: series_keys(rows, settings)})


def future_steps(history: pd.DataFrame, future: pd.DataFrame, settings: Settings, freq: pd.DateOffset,
                 limit: int | None) -> np.ndarray:
    """For each future row, how many steps after its series' last history time it lies (1 = the next step)."""
    last = history.groupby(SERIES_KEY)[settings.time_column].max()
    steps = np.zeros(len(future), dtype=int)
    for key, rows in future.groupby(SERIES_KEY, sort=False).groups.items():
        if key not in last.index:
            raise ForecastDataError(f"series {_name(key)} has no history to forecast from; pass context rows for it")
        times = future.loc[rows, settings.time_column]
        reach = dict(periods=limit + 1) if limit else dict(end=max(times.max(), last[key]))
        grid = {t: h for h, t in enumerate(pd.date_range(last[key], freq=freq, **reach))}
        for position, time in zip(future.index.get_indexer(rows), times):
            h = grid.get(time)
            if h is None or h == 0:
                where = "at or before" if time <= last[key] else \
                    f"beyond the {limit}-step horizon after" if limit else "off the grid after"
                raise ForecastDataError(f"series {_name(key)}: time {time} is {where} its last known time {last[key]} "
                                        f"(frequency {freq.freqstr})")
            steps[position] = h
    return steps


def seasonal_naive(history: pd.DataFrame, future: pd.DataFrame, settings: Settings) -> np.ndarray:
    """Each future row's value the latest whole number of seasons before it (the last value without a season)."""
    history = history if SERIES_KEY in history else read_series(history, settings)
    future = future_rows(future, settings)  # in the caller's order
    freq = frequency_of(history, settings)
    season, steps = season_length(settings, freq), future_steps(history, future, settings, freq, None)
    values = {k: g[settings.target].to_numpy(dtype=float) for k, g in history.groupby(SERIES_KEY)}
    back = season * np.ceil(steps / season).astype(int)  # whole seasons, at least the step
    return np.array([values[k][max(len(values[k]) - 1 + h - b, 0)] for k, h, b in zip(future[SERIES_KEY], steps, back)])


# ---------------------------------------------------------------- features


def series_scale(y: np.ndarray) -> float:
    """What a series' changes are divided by: its mean absolute step (its mean absolute level, 1 when flat)."""
    y = y[np.isfinite(y)]
    candidates = (np.abs(np.diff(y)).mean() if len(y) > 1 else 0.0, np.abs(y).mean() if len(y) else 0.0, 1.0)
    return float(next(c for c in candidates if c > 0))


def calendar(times: pd.DatetimeIndex, freq: pd.DateOffset) -> dict[str, np.ndarray]:
    """The calendar positions that can repeat at this frequency (a monthly series has no day of the week)."""
    span, out = span_of(freq), {}
    if span is None and freq.name.startswith("W"):
        span = pd.Timedelta(days=7)
    if span is not None and span < pd.Timedelta(days=1):
        out.update(hour=times.hour, dayofweek=times.dayofweek)
    elif span is not None and span <= pd.Timedelta(days=1):
        out.update(dayofweek=times.dayofweek, day=times.day, month=times.month)
    elif span is not None and span <= pd.Timedelta(days=7):
        out.update(week=times.isocalendar().week.to_numpy(), month=times.month)
    elif freq.name.lstrip("B").startswith(("M", "SM")):
        out.update(month=times.month)
    elif freq.name.lstrip("B").startswith("Q"):
        out.update(quarter=times.quarter)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


@dataclass(frozen=True)
class _Shape:
    """The feature recipe fixed at fit."""

    freq: str
    season: int
    lags: tuple[int, ...]
    window: int
    known: tuple[str, ...]


def _rows(y: np.ndarray, origins: np.ndarray, steps: np.ndarray, scale: float, shape: _Shape) -> dict[str, np.ndarray]:
    """The features of (origin, step) pairs of one series: values relative to y[origin], over its scale."""
    def at(index):
        index = np.asarray(index)
        out = np.full(index.shape, np.nan)
        inside = (index >= 0) & (index < len(y))
        out[inside] = y[index[inside]]
        return out

    last = y[origins]
    cols = {"step": steps.astype(float)}
    for lag in shape.lags:
        cols[f"lag_{lag}"] = (at(origins - lag) - last) / scale
    sums, squares, w = np.r_[0.0, np.cumsum(y)], np.r_[0.0, np.cumsum(y * y)], shape.window
    start = origins + 1 - w
    ok = start >= 0
    mean = np.where(ok, (sums[origins + 1] - sums[np.maximum(start, 0)]) / w, np.nan)
    var = np.where(ok, (squares[origins + 1] - squares[np.maximum(start, 0)]) / w - mean ** 2, np.nan)
    cols[f"rolling_mean_{w}"] = (mean - last) / scale
    cols[f"rolling_std_{w}"] = np.sqrt(np.maximum(var, 0)) / scale
    drift = (last - at(origins - w)) / (w * scale)
    cols["drift_x_step"] = drift * steps  # a straight-line extrapolation, which trees cannot make themselves
    if shape.season > 1:
        back = shape.season * np.ceil(steps / shape.season).astype(int)
        cols["seasonal_naive"] = (at(origins + steps - back) - last) / scale
        cols["seasonal_change"] = (at(origins + steps - back) - at(origins - back)) / scale
    return cols


class Forecaster:
    """A direct multi-step forecaster: one `learner` over every series' lag and rolling features (see the module)."""

    def __init__(self, settings: Settings, learner: str = "lightgbm", params: dict | None = None):
        if learner not in LEARNERS:
            raise ForecastDataError(f"forecasting learner {learner!r} is not one of {', '.join(LEARNERS)}")
        self.settings, self.learner, self.params = settings, learner, dict(params or {})

    # -- fitting

    def fit(self, frame: pd.DataFrame, validation: pd.DataFrame | None = None, calibrate: bool = True) -> Forecaster:
        """Train on every series of `frame`. `validation`: a backtest() of this configuration on the same data,
        whose residuals give the quantiles; without it, `calibrate` runs that backtest here."""
        settings = self.settings
        history = frame if SERIES_KEY in frame else read_series(frame, settings)
        freq = frequency_of(history, settings)
        season = season_length(settings, freq)
        known = tuple(c for c in history.columns if c not in (settings.time_column, settings.target, SERIES_KEY,
                                                              *settings.series_ids)
                      and pd.api.types.is_numeric_dtype(history[c]))
        self.shape_ = _Shape(freq.freqstr, season, target_lags(settings, season), rolling_window(settings, season), known)
        groups = {k: g for k, g in history.groupby(SERIES_KEY, sort=True)}
        self.codes_ = {k: i for i, k in enumerate(groups)}
        self.scales_ = {k: series_scale(g[settings.target].to_numpy()) for k, g in groups.items()}
        keep = max(max(self.shape_.lags), self.shape_.window, season * math.ceil(settings.horizon / season) + season) + 1
        self.history_ = pd.concat([g.tail(keep) for g in groups.values()], ignore_index=True)
        self.history_.attrs = dict(history.attrs)
        features, target = self._training_rows(groups)
        self.feature_names_ = list(features.columns)
        self.model_ = self._fit_learner(features, target) if len(target) and self.learner != "seasonal_naive" else None
        if validation is None and calibrate:
            try:
                validation = backtest(history, settings, self.learner, self.params)
            except ForecastDataError:
                validation = None  # too short to backtest: point forecasts only
        self.residuals_ = None  # horizon step -> the backtest's (actual - forecast) / series scale
        if validation is not None:
            residual = (validation["actual"] - validation["forecast"]) / validation["scale"]
            self.residuals_ = {int(h): r.to_numpy(float) for h, r in residual.groupby(validation["step"])}
        return self

    def _training_rows(self, groups: dict) -> tuple[pd.DataFrame, np.ndarray]:
        settings, parts, targets = self.settings, [], []
        for key, group in groups.items():
            y = group[settings.target].to_numpy(dtype=float)
            if len(y) < 2:
                continue
            recent = np.arange(max(0, len(y) - 1 - MAX_ORIGINS_PER_SERIES), len(y) - 1)
            origins, steps = (a.ravel() for a in np.meshgrid(recent, np.arange(1, settings.horizon + 1), indexing="ij"))
            inside = origins + steps < len(y)
            origins, steps = origins[inside], steps[inside]
            scale = self.scales_[key]
            parts.append(self._features(key, y, origins, steps, scale, group.iloc[origins + steps]))
            targets.append((y[origins + steps] - y[origins]) / scale)
        if not parts:
            return pd.DataFrame(), np.empty(0)
        return pd.concat(parts, ignore_index=True), np.concatenate(targets)

    def _features(self, key, y, origins, steps, scale, target_rows: pd.DataFrame) -> pd.DataFrame:
        """Features of (origin, step) pairs; `target_rows` hold each pair's target time and known features."""
        shape = self.shape_
        cols = _rows(y, origins, steps, scale, shape)
        times = pd.DatetimeIndex(target_rows[self.settings.time_column])
        cols.update(calendar(times, pd.tseries.frequencies.to_offset(shape.freq)))
        for name in shape.known:
            cols[f"known_{name}"] = pd.to_numeric(target_rows[name], errors="coerce").to_numpy(dtype=float)
        out = pd.DataFrame(cols)
        if self.learner == "lightgbm":
            out["series"] = pd.Categorical([self.codes_.get(key, -1)] * len(out), categories=range(len(self.codes_)))
        return out

    def _fit_learner(self, features: pd.DataFrame, target: np.ndarray):
        import importlib

        module, name, defaults = ESTIMATORS[self.learner]
        estimator = getattr(importlib.import_module(module), name)(**{**defaults, **self.params})
        if self.learner not in NATIVE_MISSING:
            features = features.fillna(0.0)
        if self.learner in SCALED:
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            estimator = make_pipeline(StandardScaler(), estimator)
        return estimator.fit(features, target)

    # -- forecasting

    def forecast(self, future: pd.DataFrame, context: pd.DataFrame | None = None, quantiles=()) -> pd.DataFrame:
        """One row per row of `future` (time column + id columns [+ known features]): the time and id columns,
        `forecast`, and one column per quantile (`q0.1`, `q0.9`, ...). `context`: recent actual rows to forecast
        from (else the history seen at fit)."""
        settings = replace(self.settings, frequency=self.shape_.freq)
        future = future_rows(future, settings)
        missing = [c for c in self.shape_.known if c not in future.columns]
        if missing:
            raise ForecastDataError(f"the forecast rows lack the known feature column(s) {', '.join(missing)}")
        history = self._history(context, settings)
        freq = pd.tseries.frequencies.to_offset(self.shape_.freq)
        steps = future_steps(history, future, settings, freq, settings.horizon)
        values = {k: g[settings.target].to_numpy(dtype=float) for k, g in history.groupby(SERIES_KEY)}
        out, scales = np.empty(len(future)), np.empty(len(future))
        for key, rows in future.groupby(SERIES_KEY, sort=False).indices.items():
            y = values[key]
            scale = self.scales_.get(key) or series_scale(y)
            origins = np.full(len(rows), len(y) - 1)
            features = self._features(key, y, origins, steps[rows], scale, future.iloc[rows])
            out[rows] = y[-1] + scale * self._predict_scaled(features)
            scales[rows] = scale
        result = future[[settings.time_column, *settings.series_ids]].copy()
        result["forecast"] = out
        for q in quantiles:
            result[quantile_column(q)] = out + scales * self._residual_quantile(steps, float(q))
        return result.reset_index(drop=True)  # in the caller's row order: `future` was never reordered

    def _history(self, context: pd.DataFrame | None, settings: Settings) -> pd.DataFrame:
        if context is None or len(context) == 0:
            return self.history_
        recent = read_series(context, settings)
        combined = pd.concat([self.history_, recent]).drop_duplicates([SERIES_KEY, settings.time_column], keep="last")
        return read_series(combined.drop(columns=[SERIES_KEY]), settings)

    def _predict_scaled(self, features: pd.DataFrame) -> np.ndarray:
        if self.model_ is None:  # seasonal naive (or a model with nothing to train on): the season's last value
            fallback = features.get("seasonal_naive", pd.Series(0.0, index=features.index))
            return fallback.fillna(0.0).to_numpy(dtype=float)
        features = features[self.feature_names_]
        if self.learner not in NATIVE_MISSING:
            features = features.fillna(0.0)
        return np.asarray(self.model_.predict(features), dtype=float)

    def _residual_quantile(self, steps: np.ndarray, q: float) -> np.ndarray:
        if not 0 < q < 1:
            raise ForecastDataError(f"a quantile is between 0 and 1, not {q}")
        if not self.residuals_:
            raise ForecastDataError("this forecaster has no validation residuals to give quantiles from "
                                    "(its data was too short for a rolling-origin backtest)")
        pooled = np.concatenate(list(self.residuals_.values()))
        return np.array([np.quantile(self.residuals_.get(int(h), pooled), q) for h in steps])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The forecast of each of the frame's rows (the mlflow pyfunc shape; a target column is ignored)."""
        return self.forecast(frame)["forecast"].to_numpy()


def quantile_column(q: float) -> str:
    return f"q{float(q):g}"


def backtest(frame: pd.DataFrame, settings: Settings, learner: str = "lightgbm", params: dict | None = None) -> pd.DataFrame:
    """Rolling-origin validation of one configuration: for every fold, a model trained on the rows up to its
    origin forecasts the horizon after it. One row per validated row: fold, series key, time, step, actual,
    forecast, the series' scale (from the training part) and the seasonal-naive forecast."""
    history = frame if SERIES_KEY in frame else read_series(frame, settings)
    freq = frequency_of(history, settings)
    parts = []
    for fold, (train, valid) in enumerate(rolling_origin_folds(history, settings)):
        seen = history.iloc[train].reset_index(drop=True)
        seen.attrs = dict(history.attrs)
        ahead = history.iloc[valid].reset_index(drop=True)
        model = Forecaster(settings, learner, params).fit(seen, calibrate=False)
        predicted = model.forecast(ahead.drop(columns=[settings.target]))
        naive = seasonal_naive(seen, ahead, replace(settings, frequency=freq.freqstr))
        parts.append(pd.DataFrame({
            "fold": fold, SERIES_KEY: ahead[SERIES_KEY], settings.time_column: ahead[settings.time_column],
            "step": future_steps(seen, ahead, settings, freq, settings.horizon),
            "actual": ahead[settings.target].to_numpy(dtype=float), "forecast": predicted["forecast"].to_numpy(),
            "scale": ahead[SERIES_KEY].map(model.scales_).to_numpy(dtype=float), "seasonal_naive": naive,
        }))
    return pd.concat(parts, ignore_index=True)
