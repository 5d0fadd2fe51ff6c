"""Shared rule: Azure ML's primary metrics, each defined once, for every stage that scores or compares a model.

The local AutoML engine scores its candidates with it (capc.local.automl), the generated trial scripts score
their trials with it (`capc build` copies this file beside them as src/azure_metrics.py), the pipeline's select
step checks its metric and goal with it (select/azure_metrics.py), and `capc report` scores stored predictions
with it. So an AutoML candidate and a sweep trial are compared on numbers computed the same way. It imports
nothing from capc, for the copies: numpy only (scipy where it ranks), imported when a score is computed, so
`capc build`, which reads only the goals, does not pay for it.

Definitions: Azure's "Evaluate automated machine learning experiment results" page (metrics are scikit-learn's,
averaged as named) and ../shared/AZURE_NOTES.md.
- accuracy: share of rows whose predicted class is the true one.
- AUC_weighted, average_precision_score_weighted: one-vs-rest per class, averaged with each class's number of
  true rows as its weight (a binary task scores both classes). A class absent from the rows, or the only class
  present, has no curve and is left out; no class left: NaN.
- norm_macro_recall: (recall_macro - R) / (1 - R), R = 1 / C for the task's C classes (0.5 for binary);
  recall_macro averages the classes that are true or predicted among the rows (scikit-learn's labels).
- precision_score_weighted: per-class precision (0 for a class never predicted), weighted by true rows.
- normalized_root_mean_squared_error, normalized_mean_absolute_error: the error divided by the range of the
  whole training target (`y_range`, given by the caller; 1 when the target is constant).
- r2_score: scikit-learn's, constant true values included (1 if predicted exactly, else 0).
- spearman_correlation: scipy's rank correlation.
- forecasting: the same four regression metrics (ForecastingPrimaryMetrics) over the rolling-origin folds'
  held-out horizons, normalized by the range of the whole training target (all series together), and
  mean_absolute_percentage_error as a secondary metric: 100 x mean(|y - y_pred| / |y|) over the rows whose
  actual value is not 0 (a zero actual has no percentage error; none left: NaN).
Deliberate differences from Azure's page:
- norm_macro_recall is floored at 0: the page gives its range as [0, 1], and a worse-than-chance model is no
  better than chance for ranking candidates.
- spearman_correlation of constant predictions (no ranks, NaN in scipy) is 0: such a model carries no rank
  information, and a NaN would make the search count a model that ran as a failed one.

Classification scorers take integer class codes 0..C-1 (y: true, predicted), probabilities (n x C, one column
per class of the task; None is fine for the metrics outside NEEDS_PROBABILITIES) and C; regression scorers take (y, y_pred,
y_range). They run on every fold of every trial, so they are plain numpy (scikit-learn's input checks cost
~50 ms a call on 20,000 rows); a test holds each to scikit-learn's value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAXIMIZE, MINIMIZE = "maximize", "minimize"

# task -> Azure primary metric -> goal (image classification's one metric is accuracy)
PRIMARY_METRICS: dict[str, dict[str, str]] = {
    "classification": {
        "accuracy": MAXIMIZE,
        "AUC_weighted": MAXIMIZE,
        "average_precision_score_weighted": MAXIMIZE,
        "norm_macro_recall": MAXIMIZE,
        "precision_score_weighted": MAXIMIZE,
    },
    "regression": {
        "spearman_correlation": MAXIMIZE,
        "normalized_root_mean_squared_error": MINIMIZE,
        "r2_score": MAXIMIZE,
        "normalized_mean_absolute_error": MINIMIZE,
    },
    # ForecastingPrimaryMetrics: the regression four, scored on the rolling-origin folds' held-out horizons
    "forecasting": {
        "spearman_correlation": MAXIMIZE,
        "normalized_root_mean_squared_error": MINIMIZE,
        "r2_score": MAXIMIZE,
        "normalized_mean_absolute_error": MINIMIZE,
    },
    "image_classification": {"accuracy": MAXIMIZE},
}
# Metrics computed from class probabilities; the others need only the predicted class.
NEEDS_PROBABILITIES = frozenset({"AUC_weighted", "average_precision_score_weighted"})


def goal_of(metric: str) -> str | None:
    """maximize or minimize for an Azure primary metric (None: not one)."""
    return next((table[metric] for table in PRIMARY_METRICS.values() if metric in table), None)


def task_kind(task: str) -> str:
    """The scorer table a task uses: regression (forecasting included), else classification (image classification
    included)."""
    return "regression" if task in ("regression", "forecasting") else "classification"


# ---------------------------------------------------------------- classification


def _confusion(y, predicted, n_classes: int) -> np.ndarray:
    import numpy as np

    y, predicted = np.asarray(y, dtype=int), np.asarray(predicted, dtype=int)
    return np.bincount(y * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), equal to scikit-learn's roc_auc_score."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary_average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Sum over thresholds of (recall step) x precision, without interpolation, as scikit-learn computes it."""
    import numpy as np

    order = np.argsort(-score, kind="mergesort")
    score, positive = score[order], positive[order]
    last_of_each_threshold = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    true_pos = np.cumsum(positive)[last_of_each_threshold]
    precision = true_pos / (last_of_each_threshold + 1)
    recall_steps = np.diff(np.r_[0, true_pos]) / true_pos[-1]
    return float(np.sum(recall_steps * precision))


def _per_class_weighted(y, proba, binary_score) -> float:
    """One-vs-rest score of each class with a curve (some rows true, some not), weighted by its true rows."""
    import numpy as np

    y = np.asarray(y, dtype=int)
    proba = np.asarray(proba, dtype=float)
    support = np.bincount(y, minlength=proba.shape[1])
    scorable = np.flatnonzero((support > 0) & (support < len(y)))
    if len(scorable) == 0:
        return float("nan")
    scores = [binary_score(y == c, proba[:, c]) for c in scorable]
    return float(np.average(scores, weights=support[scorable]))


def accuracy(y, predicted, proba, n_classes: int) -> float:
    import numpy as np

    return float(np.mean(np.asarray(predicted) == np.asarray(y)))


def auc_weighted(y, predicted, proba, n_classes: int) -> float:
    import numpy as np

    proba = np.asarray(proba, dtype=float)
    if proba.shape[1] == 2 and 0 < np.sum(y) < len(y):  # binary: class 0's curve is class 1's mirrored, same area
        return _binary_auc(np.asarray(y) == 1, proba[:, 1])
    return _per_class_weighted(y, proba, _binary_auc)


def average_precision_score_weighted(y, predicted, proba, n_classes: int) -> float:
    return _per_class_weighted(y, proba, _binary_average_precision)


def norm_macro_recall(y, predicted, proba, n_classes: int) -> float:
    """(recall_macro - R) / (1 - R), R = 1 / classes, floored at 0 (see the module's note)."""
    import numpy as np

    confusion = _confusion(y, predicted, n_classes)
    support = confusion.sum(axis=1)
    labels = np.flatnonzero(support + confusion.sum(axis=0))  # classes true or predicted, as scikit-learn counts them
    recall = np.divide(np.diag(confusion), support, out=np.zeros(len(support)), where=support > 0)
    chance = 1.0 / max(n_classes, 2)
    return float(max(0.0, (recall[labels].mean() - chance) / (1.0 - chance)))


def precision_score_weighted(y, predicted, proba, n_classes: int) -> float:
    import numpy as np

    confusion = _confusion(y, predicted, n_classes)
    predicted_rows = confusion.sum(axis=0)
    precision = np.divide(np.diag(confusion), predicted_rows, out=np.zeros(n_classes), where=predicted_rows > 0)
    return float(np.average(precision, weights=confusion.sum(axis=1)))


# ---------------------------------------------------------------- regression


def normalized_root_mean_squared_error(y, y_pred, y_range) -> float:
    return root_mean_squared_error(y, y_pred) / y_range


def normalized_mean_absolute_error(y, y_pred, y_range) -> float:
    return mean_absolute_error(y, y_pred) / y_range


def root_mean_squared_error(y, y_pred, y_range=None) -> float:
    import numpy as np

    return float(np.sqrt(np.mean((np.asarray(y, dtype=float) - np.asarray(y_pred, dtype=float)) ** 2)))


def mean_absolute_error(y, y_pred, y_range=None) -> float:
    import numpy as np

    return float(np.mean(np.abs(np.asarray(y, dtype=float) - np.asarray(y_pred, dtype=float))))


def r2_score(y, y_pred, y_range=None) -> float:
    import numpy as np

    y, y_pred = np.asarray(y, dtype=float), np.asarray(y_pred, dtype=float)
    residual = np.sum((y - y_pred) ** 2)
    total = np.sum((y - y.mean()) ** 2)
    if total == 0:  # constant true values: scikit-learn's force_finite answer
        return 1.0 if residual == 0 else 0.0
    return float(1.0 - residual / total)


def spearman_correlation(y, y_pred, y_range=None) -> float:
    import numpy as np

    from scipy.stats import spearmanr

    rho = spearmanr(y, y_pred).statistic
    return float(rho) if np.isfinite(rho) else 0.0  # constant predictions: no rank information


def mean_absolute_percentage_error(y, y_pred, y_range=None) -> float:
    """In percent, over the rows whose actual value is not 0 (see the module's note)."""
    import numpy as np

    y, y_pred = np.asarray(y, dtype=float), np.asarray(y_pred, dtype=float)
    nonzero = y != 0
    if not nonzero.any():
        return float("nan")
    return float(100.0 * np.mean(np.abs(y[nonzero] - y_pred[nonzero]) / np.abs(y[nonzero])))


# kind -> metric -> scorer. Every candidate is scored with all of its task's metrics (as Azure logs them on each
# child run); the raw errors ride along for regression.
SCORERS: dict[str, dict] = {
    "classification": {
        "accuracy": accuracy,
        "AUC_weighted": auc_weighted,
        "average_precision_score_weighted": average_precision_score_weighted,
        "norm_macro_recall": norm_macro_recall,
        "precision_score_weighted": precision_score_weighted,
    },
    "regression": {
        "normalized_root_mean_squared_error": normalized_root_mean_squared_error,
        "normalized_mean_absolute_error": normalized_mean_absolute_error,
        "r2_score": r2_score,
        "spearman_correlation": spearman_correlation,
        "root_mean_squared_error": root_mean_squared_error,
        "mean_absolute_error": mean_absolute_error,
    },
}


def classification_score(metric: str, y, predicted, proba, n_classes: int) -> float:
    """`metric` of class codes `predicted` (and probabilities `proba`, n x n_classes) against codes `y`."""
    if metric in NEEDS_PROBABILITIES and proba is None:
        raise ValueError(f"{metric} needs class probabilities")
    return SCORERS["classification"][metric](y, predicted, proba, n_classes)


# Forecasting is scored with the regression table (task_kind) plus these secondary metrics.
FORECASTING_SECONDARY = {"mean_absolute_percentage_error": mean_absolute_percentage_error}


def regression_score(metric: str, y, y_pred, y_range: float) -> float:
    return {**SCORERS["regression"], **FORECASTING_SECONDARY}[metric](y, y_pred, y_range)


def forecasting_scores(y, y_pred, y_range: float) -> dict[str, float]:
    """Every metric of a forecast on held-out horizons: the four primary ones, the raw errors and MAPE."""
    return {name: scorer(y, y_pred, y_range) for name, scorer in {**SCORERS["regression"], **FORECASTING_SECONDARY}.items()}


def class_codes(labels, classes) -> np.ndarray:
    """Labels -> their index in `classes`; a label not among them: ValueError."""
    import numpy as np

    index = {label: code for code, label in enumerate(np.asarray(classes).tolist())}
    try:
        return np.asarray([index[label] for label in np.asarray(labels).tolist()], dtype=int)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not among the classes") from None


def target_range(y) -> float:
    """What the normalized errors divide by: the range of the whole training target (1 when it is constant)."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return 1.0
    return float(y.max() - y.min()) or 1.0
