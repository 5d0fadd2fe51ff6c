"""Stage 3, render: what a forecasting spec's score.py and sample_request.json need (the `forecast` context entry).

The sample request is a real one: the next forecast horizon of the first series (ids sorted), right after that
series' last row in the training data, with quantiles asked - the request a deploy's warm-up scores, so a deployed
forecasting model is proved to answer it. Reading the time and id columns of the whole data file is what finds each
series' last row; only forecasting specs pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from capc import forecast_requests
from capc.errors import CapcError

PLACEHOLDER_TIME = "2000-01-01"  # a data asset on Azure: the rows are not known at build


def forecast_serving(spec, dataset: dict) -> dict | None:
    """The `forecast` render context of a forecasting spec: the sample request and the swagger's samples; None for
    any other task."""
    if spec.task != forecast_requests.FORECASTING_TASK:
        return None
    settings = spec.data["forecasting"]
    time_column = settings["time_column_name"]
    ids = settings.get("time_series_id_column_names") or []
    series_ids = [ids] if isinstance(ids, str) else list(ids)  # Azure takes one name or a list
    horizon = settings["forecast_horizon"]
    if dataset["remote"]:
        records = [{time_column: PLACEHOLDER_TIME, **{name: "series" for name in series_ids}}]
    else:
        records = _first_series_horizon(spec, time_column, series_ids, horizon, settings.get("frequency"))
    body = forecast_requests.request_body(records, forecast_requests.SAMPLE_QUANTILES)
    low, high = (f"{q:g}" for q in forecast_requests.SAMPLE_QUANTILES)
    index = {name: records[0][name] for name in (time_column, *series_ids)}
    return {
        "time_column": time_column,
        "series_ids": series_ids,
        "horizon": horizon,
        "context_column": forecast_requests.CONTEXT_COLUMN,
        "sample_request": body,
        "sample_inputs": body["Inputs"],
        "sample_parameters": body["GlobalParameters"],
        "sample_result": {"Results": {"forecast": [0.0], "index": [index], "quantiles": {low: [0.0], high: [0.0]},
                                      "prediction_interval": ["[0.0, 0.0]"]}},
    }


def _first_series_horizon(spec, time_column: str, series_ids: list[str], horizon: int, frequency: str | None) -> list[dict]:
    import pandas as pd

    source = Path(os.path.abspath(spec.path.parent / spec.data["dataset"]["path"]))
    columns = [time_column, *series_ids]
    try:
        if spec.data["dataset"]["format"] == "parquet":
            history = pd.read_parquet(source, columns=columns)
        else:
            history = pd.read_csv(source, usecols=columns)  # ids typed as training reads them
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CapcError(f"cannot read the time and id columns of {source}: {exc}") from None
    if series_ids:
        first = history[series_ids].drop_duplicates().sort_values(series_ids).iloc[0]
        history = history[(history[series_ids] == first).all(axis=1)]
    frequency = frequency if frequency not in (None, "auto") else None
    try:
        rows = forecast_requests.horizon_rows(history, time_column, series_ids, horizon, frequency)
    except forecast_requests.HorizonError as exc:
        raise CapcError(f"{spec.path}: the sample forecast request cannot be built: {exc}.") from None
    return forecast_requests.request_records(rows, time_column)
