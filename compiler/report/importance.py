"""Report stage, feature importance: what drives the registered model, by permutation on its validation rows.

- Rows: the rows its run's stored held-out predictions were made on (capc.state.held_out), read again from the job
  folder's training table (the MLTable AutoML reads; a trial script reads the same file and drops the same rows).
  A holdout split's rows are found by the `row_index` the trial script stores; under cross-validation every
  labelled row was out of fold, so all of them. The stored labels must match these rows (row for row, or as a
  multiset under cross-validation), else no figure: a table changed since the run would mislead. An AutoML holdout
  names no row positions (FLAML draws that split); its model was refitted on every row, so all labelled rows serve.
- Held out or not: a trial under a holdout split registers the model that never trained on those rows; a model
  refitted on every row after the search (AutoML always, a cross-validated trial) has seen them. The figure says
  which: the second shows what the model relies on, not what generalises.
- Cost: at most MAX_ROWS rows (a seeded sample), fewer for a wide table so that rows x columns x REPEATS stays
  within MAX_PREDICTED_ROWS; each raw feature column shuffled REPEATS times (seeded), all shuffled copies scored in
  a few large predict calls with the registered model itself: nothing is refitted.
  `bench/bench_importance.py` measures it at the bank spec's size.
- Score: the primary metric by Azure's definition (the scorers of the local AutoML engine); a feature's importance
  is the mean loss of it when that column is shuffled (in the goal's direction: positive is worse), with the
  standard deviation over the repeats.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from capc import azure_metrics
from capc.errors import CapcError
from capc.goal import Goal
from capc.jobfolder.data import mltable_source, read_frame
from capc.jobfolder.folder import AUTOML_FILE, load_yaml_mapping
from capc.state.held_out import HeldOutPredictions
from capc.state.registry import ModelVersion

MAX_ROWS = 2_000
REPEATS = 3
# Rows predicted in all (rows x columns x repeats): the cost is this many predictions of the model, so the row
# sample shrinks for wide tables (bank: 20 columns x 3 repeats -> 1,000 rows; measured in bench/bench_importance.py).
MAX_PREDICTED_ROWS = 60_000
MIN_ROWS = 200
SEED = 0
TOP = 15  # features drawn in the bar chart (all are in the JSON)
PREDICT_BATCH_ROWS = 200_000  # shuffled copies per predict call: few calls, bounded memory


@dataclass
class FeatureImportance:
    metric: str
    goal: str
    baseline: float  # the primary metric on the rows, nothing shuffled
    rows: int  # rows scored
    validation_rows: int  # rows the run validated on (rows is a seeded sample of these when smaller)
    repeats: int
    held_out: bool  # True: the registered model never trained on these rows
    how: str  # which rows, in a sentence or two
    features: list[dict]  # {"feature", "importance", "std"}, most important first

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def uses(self) -> str:
        kind = "held-out rows" if self.held_out else "validation rows the refitted model trained on"
        sampled = f" (a seeded sample of {self.validation_rows:,})" if self.rows < self.validation_rows else ""
        return f"{self.rows:,} {kind}{sampled}, each feature shuffled {self.repeats} times"


def of_model(model: ModelVersion, mlflow_client=None) -> FeatureImportance:
    """The registered model's feature importance on the rows its run stored predictions for (see the docstring)."""
    from capc.state import held_out as held_out_state
    from capc.state import tracking

    if model.task not in ("classification", "regression"):
        raise CapcError(f"feature importance is drawn for tabular models; this one is {model.task}.")
    stored = held_out_state.load(mlflow_client or tracking.client(), model.run_id)
    if stored is None:
        raise CapcError("the registered run stored no predictions on its validation rows, so they cannot be found again.")
    return importance(model, stored)


def as_json(model: ModelVersion) -> dict:
    """What `capc models show --json` gives: the figures, or why there are none."""
    try:
        return of_model(model).to_dict()
    except CapcError as exc:
        return {"error": str(exc)}


def importance(model: ModelVersion, stored: HeldOutPredictions, max_rows: int = MAX_ROWS, repeats: int = REPEATS) -> FeatureImportance:
    """Permutation importance of `model` on the rows `stored` was made on; a CapcError says why it cannot be done."""
    from capc.report.evaluation import load_predictor

    if model.task not in ("classification", "regression"):
        raise CapcError(f"feature importance is drawn for tabular models; this one is {model.task}.")
    features, labels, how, held_out = _validation_rows(model, stored)
    validation_rows = len(labels)
    max_rows = min(max_rows, max(MIN_ROWS, MAX_PREDICTED_ROWS // max(1, features.shape[1] * repeats)))
    if validation_rows > max_rows:
        keep = np.sort(np.random.default_rng(SEED).choice(validation_rows, size=max_rows, replace=False))
        features, labels = features.iloc[keep].reset_index(drop=True), labels[keep]
    predictor = load_predictor(Path(model.model_dir))
    scorer = _Scorer(model, predictor, labels, stored)
    goal = Goal.of(model.task, model.metric)
    baseline = scorer.score(scorer.outputs(features))
    shuffled = _shuffled_scores(features, scorer, repeats)
    sign = 1.0 if goal.maximize else -1.0
    rows = []
    for column, values in shuffled.items():
        losses = sign * (baseline - np.asarray(values))
        rows.append({"feature": str(column), "importance": float(np.mean(losses)), "std": float(np.std(losses))})
    rows.sort(key=lambda r: (-r["importance"], r["feature"]))
    return FeatureImportance(model.metric, str(goal), baseline, len(labels), validation_rows, repeats, held_out, how, rows)


def _validation_rows(model: ModelVersion, stored: HeldOutPredictions):
    """(raw feature frame, labels, the sentence saying which rows, held out) of the rows `stored` covers."""
    frame, target = _training_table(Path(model.job_dir))
    labels = np.asarray(frame[target])
    features = frame.drop(columns=[target]).reset_index(drop=True)
    if len(labels) != stored.training_rows:
        raise CapcError(f"the job folder's training table has {len(labels):,} labelled rows, but the run's split was "
                        f"drawn from {stored.training_rows:,}: the data changed since the run.")
    refitted = model.source == "automl" or stored.split == "cross_validation"
    if stored.split == "cross_validation":
        if not _same_values(sorted(map(str, labels.tolist())), sorted(map(str, stored.y_true))):
            raise CapcError("the labels of the job folder's training table differ from those the run validated on.")
        how = (f"Rows: the {len(labels):,} labelled rows of the {stored.folds}-fold cross-validation, each of which the "
               "run predicted out of fold.")
    elif stored.row_index is None and refitted:
        # AutoML's holdout is FLAML's own split, its rows unknown by position; the refitted model trained on all rows.
        how = (f"Rows: the {len(labels):,} labelled rows (the run's {stored.fraction or 0:.0%} holdout split was drawn by "
               "FLAML, and its rows are not known by position).")
    else:
        if stored.row_index is None:
            raise CapcError("the run stored no row positions for its holdout split, so its rows cannot be found again.")
        index = np.asarray(stored.row_index, dtype=int)
        if index.min() < 0 or index.max() >= len(labels) or not _same_values(labels[index].tolist(), stored.y_true):
            raise CapcError("the rows the run stored as its holdout split do not match the job folder's training table.")
        features, labels = features.iloc[index].reset_index(drop=True), labels[index]
        how = f"Rows: the {len(labels):,} rows of the run's {stored.fraction or 0:.0%} holdout split."
    if refitted:
        how += (" The registered model was refitted on every row after the search, so it has trained on these rows: "
                "the figure shows what the model relies on, not what generalises.")
    else:
        how += " The registered model never trained on them."
    return features, labels, how, not refitted


def _training_table(job_dir: Path):
    """The training table as AutoML reads it (the job folder's MLTable), unlabelled rows dropped; (frame, target)."""
    data_file, fmt, drop = mltable_source(job_dir / "data")
    target = load_yaml_mapping(job_dir / AUTOML_FILE).get("target_column_name")
    frame = read_frame(data_file, fmt, drop)
    if not target or target not in frame.columns:
        raise CapcError(f"the target column of {job_dir / AUTOML_FILE} is not in {data_file.name}.")
    return frame[frame[target].notna()], target


def _same_values(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    try:
        return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True))
    except (TypeError, ValueError):
        return [str(v) for v in a] == [str(v) for v in b]


class _Scorer:
    """The registered model's outputs on a frame (predict, or predict_proba for classification), and the primary
    metric of outputs against the labels (capc.azure_metrics, as the engine and trial scripts score): apart, so that
    many shuffled copies are predicted in one call."""

    def __init__(self, model: ModelVersion, predictor, labels: np.ndarray, stored: HeldOutPredictions):
        self.kind = azure_metrics.task_kind(model.task)
        self.metric = model.metric
        if self.metric not in azure_metrics.SCORERS[self.kind]:
            raise CapcError(f"no local definition of the primary metric {model.metric} to score shuffled rows with.")
        self.predictor = predictor
        if self.kind == "regression":
            self.y = labels.astype(float)
            self.y_range = stored.y_range or azure_metrics.target_range(self.y)
            return
        self.proba = predictor.predict_proba is not None and predictor.classes is not None
        if not self.proba and self.metric in azure_metrics.NEEDS_PROBABILITIES:
            raise CapcError(f"the registered model gives no class probabilities, which {self.metric} is scored from.")
        self.classes = list(predictor.classes if predictor.classes is not None else stored.classes or [])
        try:
            self.y = azure_metrics.class_codes(labels, self.classes)
        except ValueError:
            raise CapcError("a label of the validation rows is not among the model's classes.") from None

    def outputs(self, frame) -> np.ndarray:
        if self.kind == "regression":
            return np.asarray(self.predictor.predict(frame), dtype=float).ravel()
        if self.proba:
            return np.asarray(self.predictor.predict_proba(frame), dtype=float)
        return azure_metrics.class_codes(np.asarray(self.predictor.predict(frame)).ravel(), self.classes)

    def score(self, outputs: np.ndarray) -> float:
        if self.kind == "regression":
            return float(azure_metrics.regression_score(self.metric, self.y, outputs, self.y_range))
        proba = outputs if self.proba else None
        predicted = np.argmax(outputs, axis=1) if self.proba else outputs
        return float(azure_metrics.classification_score(self.metric, self.y, predicted, proba, len(self.classes)))


def _shuffled_scores(features, scorer: _Scorer, repeats: int) -> dict[str, list[float]]:
    """column -> the primary metric with that column shuffled, once per repeat (seeded). The shuffled copies are
    stacked and predicted in a few large calls: one call on many rows costs far less than many calls on few."""
    import pandas as pd

    rng = np.random.default_rng(SEED)
    rows = len(features)
    jobs = [(column, r) for column in features.columns for r in range(repeats)]
    per_call = max(1, PREDICT_BATCH_ROWS // max(rows, 1))
    out: dict[str, list[float]] = {str(c): [] for c in features.columns}
    for start in range(0, len(jobs), per_call):
        batch = jobs[start:start + per_call]
        copies = []
        for column, _ in batch:
            copy = features.copy()
            copy[column] = features[column].to_numpy()[rng.permutation(rows)]
            copies.append(copy)
        outputs = scorer.outputs(pd.concat(copies, ignore_index=True))
        for k, (column, _) in enumerate(batch):
            out[str(column)].append(scorer.score(outputs[k * rows:(k + 1) * rows]))
    return out
