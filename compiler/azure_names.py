"""Azure ML names capc must match, as data: primary metrics per task (with their goal; capc.azure_metrics) and AutoML algorithms.

Checked against azure-ai-ml 1.35.2 (`_restclient/arm_ml_service/models/_enums.py`) and ../shared/AZURE_NOTES.md.
"""

from __future__ import annotations

import re

from capc import azure_metrics

MAXIMIZE, MINIMIZE = azure_metrics.MAXIMIZE, azure_metrics.MINIMIZE

# task -> {Azure primary metric -> goal}: the metrics' own module holds the table (it is copied into job folders)
AUTOML_METRICS: dict[str, dict[str, str]] = azure_metrics.PRIMARY_METRICS

IMAGE_TASK = "image_classification"

# task -> Azure AutoML training algorithms (PascalCase as the docs and Studio write them)
ALGORITHMS: dict[str, list[str]] = {
    "classification": [
        "LogisticRegression", "SGD", "MultinomialNaiveBayes", "BernoulliNaiveBayes", "SVM", "LinearSVM", "KNN",
        "DecisionTree", "RandomForest", "ExtremeRandomTrees", "LightGBM", "GradientBoosting", "XGBoostClassifier",
    ],
    "regression": [
        "ElasticNet", "GradientBoosting", "DecisionTree", "KNN", "LassoLars", "SGD", "RandomForest",
        "ExtremeRandomTrees", "LightGBM", "XGBoostRegressor",
    ],
    # ForecastingModels: the time-series models, then the regression learners over lag and rolling features
    "forecasting": [
        "AutoArima", "Prophet", "Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing",
        "Arimax", "TCNForecaster", "ElasticNet", "GradientBoosting", "DecisionTree", "KNN", "LassoLars", "SGD",
        "RandomForest", "ExtremeRandomTrees", "LightGBM", "XGBoostRegressor",
    ],
    "image_classification": [],
}


def yaml_spelling(name: str) -> str:
    """Azure YAML writes enum values in snake case (azure.ai.ml._utils.utils.camel_to_snake)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def metric_from_yaml(task: str, spelling: str) -> str | None:
    """`auc_weighted` or `AUC_weighted` -> `AUC_weighted` (Azure's loader compares metrics in snake case too)."""
    wanted = yaml_spelling(spelling)
    return next((name for name in AUTOML_METRICS.get(task, {}) if yaml_spelling(name) == wanted), None)
