"""Backend, local AutoML: Azure AutoML names -> the FLAML engine's, as data (algorithms, metrics).

Azure's own names (which metrics and algorithms exist per task, their goals) live in capc.azure_names; this
module says how each one runs on this machine. Every Azure primary metric is scored by capc itself, with the
definition Azure documents (sklearn underneath), and handed to FLAML as a custom metric: that way each
candidate reports every Azure metric of its task, and the values agree with what Azure would show.
`FLAML_BUILTIN` names the FLAML metric that computes the same number where there is one (a contract test
checks the two agree); the scorers below are the custom metrics for the rest.
"""

from __future__ import annotations

import numpy as np

# Azure algorithm -> FLAML estimators that run it here (FLAML's, or capc's own from learners.py); None: no learner,
# so the engine skips it and says so. Where Azure has one algorithm and FLAML two search spaces for it, both are tried.
ALGORITHM_ESTIMATORS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "classification": {
        "LogisticRegression": ("lrl1", "lrl2"),
        "SGD": ("sgd",),
        "MultinomialNaiveBayes": None,
        "BernoulliNaiveBayes": None,
        "SVM": ("kernel_svc",),  # capc's own FLAML learner (learners.py): FLAML tunes only the linear SVC
        "LinearSVM": ("svc",),
        "KNN": ("kneighbor",),
        "DecisionTree": None,
        "RandomForest": ("rf",),
        "ExtremeRandomTrees": ("extra_tree",),
        "LightGBM": ("lgbm",),
        "GradientBoosting": ("histgb",),  # sklearn's histogram gradient boosting stands in for GradientBoostingClassifier
        "XGBoostClassifier": ("xgboost", "xgb_limitdepth"),
    },
    "regression": {
        "ElasticNet": ("enet",),
        "GradientBoosting": ("histgb",),
        "DecisionTree": None,
        "KNN": ("kneighbor",),
        "LassoLars": ("lassolars",),
        "SGD": ("sgd",),
        "RandomForest": ("rf",),
        "ExtremeRandomTrees": ("extra_tree",),
        "LightGBM": ("lgbm",),
        "XGBoostRegressor": ("xgboost", "xgb_limitdepth"),
    },
}

# FLAML tries its first estimator first and spreads the rest of the budget by estimated cost of improvement,
# so the list starts with the learner that is cheapest to get a good first model from.
ESTIMATOR_ORDER: tuple[str, ...] = (
    "lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "histgb",
    "lrl1", "lrl2", "enet", "lassolars", "sgd", "svc", "kernel_svc", "kneighbor",
)

# FLAML estimator -> (most training rows the local engine runs it on, why). A FLAML trial cannot be stopped inside
# a scikit-learn fit, so a learner whose time grows faster than the rows is left out of big jobs (with a note)
# rather than trusted to the time budget. Kernel SVC with its calibration, C=1, on bank marketing rows: 0.7 s at
# 2,500 rows, 2.8 s at 5,000, 6 s at 10,000 (one fit; a 5-fold trial makes five).
ROW_LIMITS: dict[str, tuple[int, str]] = {
    "kernel_svc": (10_000, "kernel SVC's training time grows with the square of the rows"),
}

# Azure primary metric -> training objectives a FLAML learner also searches, the first being where it starts:
# a learner should train on the loss the job is judged by where it has one. (LightGBM's L1 objective measured
# ~3% lower MAE than its default squared error on housing; XGBoost's reg:absoluteerror gained nothing there.)
TRAINING_OBJECTIVES: dict[str, dict[str, tuple[str, ...]]] = {
    "normalized_mean_absolute_error": {"lgbm": ("regression_l1", "regression")},
}

# Azure primary metric -> FLAML's built-in metric computing the same value (None: no built-in; capc's scorer).
# FLAML's losses for "higher is better" metrics are 1 - value, which is also what capc hands FLAML.
FLAML_BUILTIN: dict[str, dict[str, str | None]] = {
    "classification": {
        "accuracy": "accuracy",
        "AUC_weighted": "roc_auc",  # binary; multiclass: roc_auc_ovr_weighted (see flaml_builtin_metric)
        "average_precision_score_weighted": None,  # FLAML's "ap" is the positive class only, not weighted
        "norm_macro_recall": None,
        "precision_score_weighted": None,
    },
    "regression": {
        "normalized_root_mean_squared_error": None,  # FLAML's "rmse" is not divided by the target range
        "normalized_mean_absolute_error": None,
        "r2_score": "r2",
        "spearman_correlation": None,
    },
}


def flaml_builtin_metric(task: str, metric: str, n_classes: int = 2) -> str | None:
    name = FLAML_BUILTIN.get(task, {}).get(metric)
    if name == "roc_auc" and n_classes > 2:
        return "roc_auc_ovr_weighted"  # Azure's AUC_weighted is one-vs-rest, weighted by class support
    return name


# ------------------------------------------------------------------ scorers (Azure's definitions)
# Classification scorers take (y: int codes 0..K-1, proba: n x K); regression ones (y, y_pred, y_range).
# They run on every fold of every trial, so they are plain numpy (sklearn's checks cost ~50 ms per call on
# 20,000 rows, a tenth of a two-minute search); a test holds each to sklearn's value.


def _confusion(y, proba) -> np.ndarray:
    k = proba.shape[1]
    return np.bincount(np.asarray(y) * k + np.argmax(proba, axis=1), minlength=k * k).reshape(k, k)


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), equal to sklearn's roc_auc_score."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes among the rows")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary_average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Sum over thresholds of (recall step) x precision, without interpolation, as sklearn computes it."""
    order = np.argsort(-score, kind="mergesort")
    score, positive = score[order], positive[order]
    last_of_each_threshold = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    true_pos = np.cumsum(positive)[last_of_each_threshold]
    if true_pos[-1] == 0:
        return 0.0
    precision = true_pos / (last_of_each_threshold + 1)
    recall_steps = np.diff(np.r_[0, true_pos]) / true_pos[-1]
    return float(np.sum(recall_steps * precision))


def _per_class_weighted(y, proba, binary_score) -> float:
    """One-vs-rest score of each class present, weighted by its number of true rows."""
    y = np.asarray(y)
    support = np.bincount(y, minlength=proba.shape[1])
    present = np.flatnonzero(support)
    scores = [binary_score(y == c, proba[:, c]) for c in present]
    return float(np.average(scores, weights=support[present]))


def accuracy(y, proba) -> float:
    return float(np.mean(np.argmax(proba, axis=1) == y))


def auc_weighted(y, proba) -> float:
    """One-vs-rest AUC per class, weighted by class support (binary: the plain AUC)."""
    if proba.shape[1] == 2:
        return _binary_auc(np.asarray(y) == 1, proba[:, 1])
    return _per_class_weighted(y, proba, _binary_auc)


def average_precision_score_weighted(y, proba) -> float:
    """Average precision per class (one-vs-rest, both classes when binary), weighted by class support."""
    return _per_class_weighted(y, proba, _binary_average_precision)


def norm_macro_recall(y, proba) -> float:
    """Macro recall rescaled so that chance scores 0 and perfect 1: (recall - R) / (1 - R), R = 1 / classes.

    Azure documents the formula, not a floor, so a worse-than-chance model scores below 0 here.
    """
    confusion = _confusion(y, proba)
    support = confusion.sum(axis=1)
    labels = np.flatnonzero(support + confusion.sum(axis=0))  # classes true or predicted, as sklearn counts them
    recall = np.divide(np.diag(confusion), support, out=np.zeros(len(support)), where=support > 0)
    chance = 1.0 / proba.shape[1]
    return float((recall[labels].mean() - chance) / (1.0 - chance))


def precision_score_weighted(y, proba) -> float:
    confusion = _confusion(y, proba)
    predicted = confusion.sum(axis=0)
    precision = np.divide(np.diag(confusion), predicted, out=np.zeros(len(predicted)), where=predicted > 0)
    return float(np.average(precision, weights=confusion.sum(axis=1)))


def normalized_root_mean_squared_error(y, y_pred, y_range) -> float:
    """RMSE divided by the range of the target (Azure takes the range over the whole training target)."""
    return float(np.sqrt(np.mean((np.asarray(y) - y_pred) ** 2)) / y_range)


def normalized_mean_absolute_error(y, y_pred, y_range) -> float:
    return float(np.mean(np.abs(np.asarray(y) - y_pred)) / y_range)


def root_mean_squared_error(y, y_pred, y_range) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - y_pred) ** 2)))


def mean_absolute_error(y, y_pred, y_range) -> float:
    return float(np.mean(np.abs(np.asarray(y) - y_pred)))


def r2_score(y, y_pred, y_range) -> float:
    y = np.asarray(y, dtype=float)
    total = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - y_pred) ** 2) / total) if total > 0 else float("nan")


def spearman_correlation(y, y_pred, y_range) -> float:
    from scipy.stats import spearmanr

    rho = spearmanr(y, y_pred).statistic
    return float(rho) if np.isfinite(rho) else 0.0  # constant predictions: no rank information


# task -> Azure metric name -> scorer. Every candidate is scored with all of its task's metrics (as Azure logs
# them on each child run); the primary one drives the search. The raw errors ride along for regression.
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

# Ensemble candidates, named as Azure names its ensemble iterations.
VOTING_ENSEMBLE = "VotingEnsemble"
STACK_ENSEMBLE = "StackEnsemble"
