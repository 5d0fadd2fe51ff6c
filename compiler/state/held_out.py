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
holdout split's rows by it).
Forecasting (the local engine's rolling-origin folds) adds, per prediction: times (ISO text), series (the series'
id values joined with "|", "" for a single series), steps (1 = the first step after the fold's origin), fold_index
(0 = the oldest fold) and baseline (the seasonal-naive forecast of the same row).
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
SPLITS = ("cross_validation", "holdout", "validation_data")  # validation_data: a table of its own (a hand-written AutoML job's)


@dataclass(frozen=True)
class HeldOutPredictions:
    task: str  # classification | regression | image_classification | forecasting
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
    times: list | None = None  # forecasting: see the module's note
    series: list | None = None
    steps: list | None = None
    fold_index: list | None = None
    baseline: list | None = None

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
        for name in ("row_index", "times", "series", "steps", "fold_index", "baseline"):
            values = getattr(held_out, name)
            if values is not None and len(values) != held_out.rows:
                raise ValueError(f"{len(values)} {name} values for {held_out.rows} predictions")
        return held_out


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
