"""Shared state: a run's held-out predictions, stored with the run as an MLflow artifact (ARTIFACT_PATH).

A model is judged on rows it did not train on. Whoever trains it knows which rows those were, so it records
its predictions on them beside the run: the local AutoML engine for its winner (the out-of-fold predictions of
its cross-validation, or its holdout split's, kept while the search evaluates it), and the generated trial
scripts (tabular and image) for their validation split or folds (they import nothing of capc, so they write the
same JSON themselves, at the path the render stage gives them from here). `capc report` reads them back and
needs no refit.

The JSON (one object): task, split ("cross_validation" | "holdout" | "validation_data"), folds, fraction, seed, training_rows (the
labelled rows the split was drawn from), recomputed (true: predicted again after the search with the same
folds and seed), y_true, y_pred, classes and probabilities (classification: one column per class, in `classes`
order), y_range (regression: the range of the target the normalised metrics divide by), row_index (optional: each
prediction's position among the labelled rows, in the table's order; the report's feature importance finds a
holdout split's rows by it), forecast (forecasting, split "rolling_origin": FORECAST_KEYS, the lists one entry per
prediction - see forecast_fields).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from capc.errors import CapcError

ARTIFACT_PATH = "held_out/predictions.json"
# validation_data: a table of its own (a hand-written AutoML job's); rolling_origin: forecasts after each cut-off
SPLITS = ("cross_validation", "holdout", "validation_data", "rolling_origin")
# A forecasting run's `forecast` fields: its settings, then per prediction its time stamp (ISO text), its series
# label, its step after the cut-off (1 = the first) and the cut-off it was forecast from (the last time of its history).
FORECAST_SETTINGS = ("time_column", "series_ids", "target", "horizon")
FORECAST_LISTS = ("times", "series", "steps", "origins")


@dataclass(frozen=True)
class HeldOutPredictions:
    task: str  # classification | regression | image_classification
    split: str  # cross_validation | holdout | validation_data
    folds: int | None
    fraction: float | None  # the holdout's share of the rows
    seed: int | None
    training_rows: int  # labelled rows the split was drawn from
    y_true: list
    y_pred: list
    classes: list | None = None
    probabilities: list | None = None
    y_range: float | None = None
    recomputed: bool = False  # predicted again after the search, outside its time budget
    row_index: list | None = None  # each prediction's row among the labelled training rows (trial scripts write it)
    forecast: dict | None = None  # forecasting: forecast_fields(...)

    @property
    def rows(self) -> int:
        return len(self.y_true)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeldOutPredictions:
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        known = {f.name for f in fields(cls)}
        held_out = cls(**{k: v for k, v in data.items() if k in known})  # a missing field: TypeError
        if held_out.split not in SPLITS:
            raise ValueError(f"split is {held_out.split!r}, not one of {', '.join(SPLITS)}")
        if len(held_out.y_true) != len(held_out.y_pred) or not held_out.y_true:
            raise ValueError(f"{len(held_out.y_true)} actual values for {len(held_out.y_pred)} predictions")
        if held_out.probabilities is not None and (
            held_out.classes is None or np.shape(held_out.probabilities) != (held_out.rows, len(held_out.classes))
        ):
            raise ValueError("probabilities need one row per prediction and one column per class")
        if held_out.row_index is not None and len(held_out.row_index) != held_out.rows:
            raise ValueError(f"{len(held_out.row_index)} row indices for {held_out.rows} predictions")
        if held_out.forecast is not None:
            _check_forecast(held_out.forecast, held_out.rows)
        return held_out


def forecast_fields(time_column: str, series_ids, target: str, horizon: int, times, series, steps, origins) -> dict:
    """The `forecast` fields of a forecasting run's held-out predictions (one entry per prediction in each list):
    `series` holds each row's series key (capc.forecasting.series_keys: the id values as text joined with "|")."""
    import pandas as pd

    return {
        "time_column": time_column, "series_ids": list(series_ids), "target": target, "horizon": int(horizon),
        "times": [pd.Timestamp(t).isoformat() for t in times], "series": [str(key) for key in series],
        "steps": [int(s) for s in steps], "origins": [pd.Timestamp(t).isoformat() for t in origins],
    }


def of_backtest(validation, settings, frequency: str, *, training_rows: int, y_range: float | None) -> HeldOutPredictions:
    """A forecasting run's held-out predictions from capc.forecasting.backtest()'s rows (fold, series key, time, step,
    actual, forecast): every fold's forecasts, each made by a model trained only on the rows up to its cut-off."""
    from pandas.tseries.frequencies import to_offset

    from capc.forecasting import SERIES_KEY

    offset = to_offset(frequency)
    times = list(validation[settings.time_column])
    steps = [int(s) for s in validation["step"]]
    return HeldOutPredictions(
        task="forecasting", split="rolling_origin", folds=int(validation["fold"].nunique()), fraction=None, seed=None,
        training_rows=training_rows, y_true=plain(validation["actual"]), y_pred=plain(validation["forecast"]), y_range=y_range,
        forecast=forecast_fields(settings.time_column, settings.series_ids, settings.target, settings.horizon, times,
                                 validation[SERIES_KEY], steps, [t - offset * s for t, s in zip(times, steps)]),
    )


def _check_forecast(forecast: dict, rows: int) -> None:
    if not isinstance(forecast, dict) or any(key not in forecast for key in FORECAST_SETTINGS + FORECAST_LISTS):
        raise ValueError(f"forecast needs {', '.join(FORECAST_SETTINGS + FORECAST_LISTS)}")
    for key in FORECAST_LISTS:
        if len(forecast[key]) != rows:
            raise ValueError(f"forecast.{key} has {len(forecast[key])} entries for {rows} predictions")


def plain(values) -> list:
    """numpy arrays and scalars -> JSON-ready lists (labels keep their type: text stays text, numbers numbers)."""
    return np.asarray(values).tolist()


def log(mlflow_client, run_id: str, predictions: HeldOutPredictions) -> None:
    mlflow_client.log_dict(run_id, predictions.to_dict(), ARTIFACT_PATH)


def load(mlflow_client, run_id: str) -> HeldOutPredictions | None:
    """The run's held-out predictions; None when it recorded none (a run from before they were kept, a user's
    own trial script) or is not in the store; a CapcError when the artifact is there but unreadable."""
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a one-file download is no progress to show
    try:
        listed = {a.path for a in mlflow_client.list_artifacts(run_id, str(Path(ARTIFACT_PATH).parent))}
    except MlflowException:  # the run is not in this store
        return None
    if ARTIFACT_PATH not in listed:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        try:
            local = mlflow_client.download_artifacts(run_id, ARTIFACT_PATH, scratch)
            return HeldOutPredictions.from_dict(json.loads(Path(local).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise CapcError(f"the held-out predictions stored with run {run_id} ({ARTIFACT_PATH}) cannot be read: {exc}") from None
