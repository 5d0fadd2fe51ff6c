"""Backend, local: Azure AutoML's test run - the best model's predictions on the job's test rows, and every metric
of its task on them.

The primary metrics are scored by the engine's own scorers (capc.local.automl.names.SCORERS: Azure's
definitions, the values the search ranked candidates by); the other metrics Azure's test run lists come from
scikit-learn under Azure's names (https://learn.microsoft.com/azure/machine-learning/how-to-understand-automated-ml).
Normalised regression errors divide by the range of the test target, as Azure normalises the metrics of the
rows it scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ScoredTest:
    predictions: object  # DataFrame: the test rows' label, the prediction and (classification) each class's probability
    metrics: dict
    rows: int
    duration_s: float
    notes: list[str] = field(default_factory=list)


def score_test_rows(result, frame, target: str) -> ScoredTest:
    """The AutoMLResult's best model on `frame` (features and, when present, the target)."""
    import pandas as pd

    started = time.monotonic()
    notes: list[str] = []
    model = result.model
    if target not in frame.columns:
        notes.append(f"the test data has no target column `{target}`: predictions only, no metrics")
    labelled = frame[frame[target].notna()] if target in frame.columns else frame
    if len(labelled) < len(frame):
        notes.append(f"test run: {len(frame) - len(labelled)} rows without a target are left out")
    features = labelled.drop(columns=[target], errors="ignore")
    predictions = pd.DataFrame({target: labelled[target].to_numpy()} if target in labelled.columns else {})
    metrics: dict = {}
    if model.task == "classification":
        probabilities = np.asarray(model.predict_proba(features), dtype=float)
        classes = np.asarray(model.classes_)
        predictions["prediction"] = classes[np.argmax(probabilities, axis=1)]
        for k, label in enumerate(classes):
            predictions[f"probability_{label}"] = probabilities[:, k]
        if target in labelled.columns:
            metrics = _classification_metrics(labelled[target].to_numpy(), probabilities, classes, result.settings, notes)
    else:
        predicted = np.asarray(model.predict(features), dtype=float)
        predictions["prediction"] = predicted
        if target in labelled.columns:
            metrics = _regression_metrics(labelled[target].to_numpy(dtype=float), predicted, result.settings)
    return ScoredTest(predictions, metrics, len(labelled), time.monotonic() - started, notes)


def _classification_metrics(labels, probabilities, classes, settings, notes: list[str]) -> dict:
    from sklearn import metrics as sk

    from capc.local.automl.search import TrialScorer

    labels = labels.astype(str) if classes.dtype.kind in "OUS" else labels
    known = np.isin(labels, classes)
    if not known.all():
        notes.append(f"test run: {int((~known).sum())} rows whose label the training data lacks are left out of the metrics")
    y_true, proba = labels[known], probabilities[known]
    codes = np.searchsorted(classes, y_true)
    scorer = TrialScorer("classification", settings.primary_metric, len(classes), 1.0)
    scores = scorer.score(codes, proba)
    predicted = np.argmax(proba, axis=1)
    all_codes = list(range(len(classes)))
    for average in ("macro", "micro", "weighted"):
        scores[f"f1_score_{average}"] = float(sk.f1_score(codes, predicted, labels=all_codes, average=average, zero_division=0))
        scores[f"recall_score_{average}"] = float(sk.recall_score(codes, predicted, labels=all_codes, average=average, zero_division=0))
        scores[f"precision_score_{average}"] = float(sk.precision_score(codes, predicted, labels=all_codes, average=average, zero_division=0))
    scores["balanced_accuracy"] = float(sk.balanced_accuracy_score(codes, predicted))
    scores["matthews_correlation"] = float(sk.matthews_corrcoef(codes, predicted))
    scores["log_loss"] = float(sk.log_loss(codes, np.clip(proba, 1e-15, 1.0), labels=all_codes))
    present = [k for k in all_codes if 0 < np.sum(codes == k) < len(codes)]
    if present:
        aucs = [sk.roc_auc_score(codes == k, proba[:, k]) for k in present]
        scores["AUC_macro"] = float(np.mean(aucs))
        scores["AUC_micro"] = float(sk.roc_auc_score(np.eye(len(classes))[codes][:, present].ravel(), proba[:, present].ravel()))
    return {k: v for k, v in sorted(scores.items()) if np.isfinite(v)}


def _regression_metrics(y_true, predicted, settings) -> dict:
    from sklearn import metrics as sk

    from capc.local.automl.search import TrialScorer

    y_range = float(np.max(y_true) - np.min(y_true)) or 1.0
    scores = TrialScorer("regression", settings.primary_metric, 0, y_range).score(y_true, predicted)
    errors = {
        "root_mean_squared_error": float(np.sqrt(sk.mean_squared_error(y_true, predicted))),
        "mean_absolute_error": float(sk.mean_absolute_error(y_true, predicted)),
        "median_absolute_error": float(sk.median_absolute_error(y_true, predicted)),
    }
    scores.update(errors)
    scores["normalized_median_absolute_error"] = errors["median_absolute_error"] / y_range
    scores["explained_variance"] = float(sk.explained_variance_score(y_true, predicted))
    positive = (y_true > 0) & (predicted > 0)
    if positive.all():
        scores["root_mean_squared_log_error"] = float(np.sqrt(sk.mean_squared_log_error(y_true, predicted)))
        scores["normalized_root_mean_squared_log_error"] = scores["root_mean_squared_log_error"] / (
            float(np.log1p(np.max(y_true)) - np.log1p(np.min(y_true))) or 1.0)
    return {k: v for k, v in sorted(scores.items()) if np.isfinite(v)}
