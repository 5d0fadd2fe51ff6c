"""Forecast requests in Azure AutoML's forecasting shape, shared by render (score.py, sample_request.json) and
`capc predict`: the next horizon's rows of each series, their time stamps as text, and the request body; and where a
forecasting model records its settings (the report reads them).

Azure's forecasting scoring script (azureml.automl.core's scoring_script_forecasting_v2, written beside every
AutoML forecasting model) takes
    {"Inputs": {"data": [{"<time column>": "2009-10-01", "<id column>": "realgdp", ...}, ...]},
     "GlobalParameters": {"quantiles": [0.025, 0.975]}}
one record per row to forecast (time column, id columns, known features), and a row whose `y_query` holds the actual
value is context: recent history to forecast from. capc's score_forecast.py answers the same body.
Self-contained (pandas only), like azure_metrics.py: render, serve and report import it; nothing of capc here.
"""

from __future__ import annotations

FORECASTING_TASK = "forecasting"
# The MLmodel metadata entry holding a forecasting model's settings (time column, ids, target, horizon, frequency), as
# the local engine writes it (capc.local.automl.forecast_model.METADATA_KEY); the report reads it here.
MODEL_METADATA_KEY = "capc_forecasting"
CONTEXT_COLUMN = "y_query"  # Azure's name for a row's actual value in a forecast request (context rows)
SAMPLE_QUANTILES = (0.1, 0.9)  # the sample request asks for an 80% interval


class HorizonError(ValueError):
    """The history cannot say where the next horizon starts (no frequency, a bad time value); one line."""


def time_text(stamp) -> str:
    """A time stamp as request text: `2009-10-01` for a date, ISO 8601 with the time otherwise."""
    import pandas as pd

    stamp = pd.Timestamp(stamp)
    return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat()


def infer_frequency(times_by_series) -> str:
    """The pandas offset alias of the series' spacing (the longest series with three or more stamps decides)."""
    import pandas as pd

    for times in sorted(times_by_series, key=len, reverse=True):
        unique = pd.DatetimeIndex(sorted(set(times)))
        if len(unique) >= 3:
            found = pd.infer_freq(unique)
            if found:
                return found
            break
    raise HorizonError("the time column's spacing is irregular, so the frequency cannot be inferred; give forecasting.frequency")


def next_times(last, frequency: str, steps: int) -> list:
    """The `steps` time stamps after `last` at `frequency` (pandas offset arithmetic: month ends stay month ends)."""
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    try:
        offset = to_offset(frequency)
    except ValueError:
        raise HorizonError(f"frequency {frequency!r} is not a pandas offset alias") from None
    last = pd.Timestamp(last)
    return [last + offset * step for step in range(1, steps + 1)]


def horizon_rows(history, time_column: str, series_ids, horizon: int, frequency: str | None = None):
    """The rows a forecast of the next `horizon` steps of every series names: a DataFrame of the time column (as
    datetimes) and the id columns, series in sorted order, `horizon` rows each, right after that series' last row."""
    import pandas as pd

    series_ids = list(series_ids)
    if horizon < 1:
        raise HorizonError(f"the horizon must be at least 1 step, got {horizon}")
    missing = [c for c in [time_column, *series_ids] if c not in history.columns]
    if missing:
        raise HorizonError(f"the history has no column {missing[0]!r}")
    try:
        times = pd.to_datetime(history[time_column], errors="raise")
    except (ValueError, TypeError) as exc:
        raise HorizonError(f"time column {time_column!r} does not read as dates: {exc}") from None
    if times.isna().any():
        raise HorizonError(f"time column {time_column!r} has a missing value")
    frame = history[series_ids].assign(**{time_column: times})
    groups = list(frame.groupby(series_ids, sort=True)) if series_ids else [((), frame)]
    frequency = frequency or infer_frequency([group[time_column] for _, group in groups])
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for stamp in next_times(group[time_column].max(), frequency, horizon):
            rows.append({time_column: stamp, **dict(zip(series_ids, key))})
    return pd.DataFrame(rows, columns=[time_column, *series_ids])


def request_records(rows, time_column: str) -> list[dict]:
    """Rows as the JSON records of "Inputs.data": the time stamp as text, numpy scalars as plain values."""
    records = []
    for row in rows.to_dict(orient="records"):
        records.append({name: (time_text(value) if name == time_column else plain_value(value)) for name, value in row.items()})
    return records


def request_body(records: list[dict], quantiles=()) -> dict:
    body: dict = {"Inputs": {"data": records}}
    if quantiles:
        body["GlobalParameters"] = {"quantiles": [float(q) for q in quantiles]}
    return body


def plain_value(value):
    """A cell as a JSON value: numpy scalars unwrapped, NaN as null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
