"""Backend, local AutoML: Azure AutoML names -> the FLAML engine's, as data (algorithms, metrics).

Azure's own names (which metrics and algorithms exist per task, their goals) live in capc.azure_names; this
module says how each one runs on this machine. Every Azure primary metric is scored by capc itself, with the
definition Azure documents (capc.azure_metrics, the one the trial scripts use), and handed to FLAML as a custom metric: that way each
candidate reports every Azure metric of its task, and the values agree with what Azure would show.
`FLAML_BUILTIN` names the FLAML metric that computes the same number where there is one (a contract test
checks the two agree).
"""

from __future__ import annotations

from capc import azure_metrics

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
    # capc.forecasting's learners over lag and rolling features, and its baselines (capc.local.automl.forecast_search).
    # Azure's time-series models (ARIMA, Prophet, exponential smoothing, TCN) and its average baselines have none
    # (README, The local engine, Forecasting: FLAML's per-series ARIMA/SARIMAX/Holt-Winters measured behind ElasticNet
    # over the lag features and took 6 minutes where a spec gives AutoML 2).
    "forecasting": {
        "AutoArima": None,
        "Prophet": None,
        "Naive": ("naive",),
        "SeasonalNaive": ("seasonal_naive",),
        "Average": None,
        "SeasonalAverage": None,
        "ExponentialSmoothing": None,
        "Arimax": None,
        "TCNForecaster": None,
        "ElasticNet": ("elasticnet",),
        "GradientBoosting": ("gradientboosting",),
        "DecisionTree": ("decisiontree",),
        "KNN": ("knn",),
        "LassoLars": ("lassolars",),
        "SGD": ("sgd",),
        "RandomForest": ("randomforest",),
        "ExtremeRandomTrees": ("extratrees",),
        "LightGBM": ("lightgbm",),
        "XGBoostRegressor": ("xgboost",),
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


# task -> Azure metric name -> scorer: capc.azure_metrics's, the definitions the trial scripts score with too.
SCORERS = azure_metrics.SCORERS

# Ensemble candidates, named as Azure names its ensemble iterations.
VOTING_ENSEMBLE = "VotingEnsemble"
STACK_ENSEMBLE = "StackEnsemble"
