"""Specs for the render-stage tests: written as YAML next to small real data samples, loaded by capc's own loader.

Shared by test_rendered_artifacts_sdk.py and test_train_script.py (plain functions, not fixtures, so either can build
what it needs in its own tmp_path).
"""

from __future__ import annotations

import copy
import csv
import shutil
from pathlib import Path

import yaml

from repo import DATA

TABULAR = {
    # name: (csv under specs/data, target, task, metric)
    "bank": ("bankmarketing/bankmarketing_train.csv", "y", "classification", "accuracy"),
    "housing": ("housing/housing.csv", "median_house_value", "regression", "normalized_mean_absolute_error"),
    "digits": ("digits/digits_train.csv", "label", "classification", "accuracy"),
}

BASE_SPECS: dict[str, dict] = {
    "digits": {
        "name": "digits",
        "description": "Handwritten digits, 5-fold CV accuracy, logistic regression sweep.",
        "dataset": {"path": "data/digits.csv", "format": "csv", "target": "label", "cross_validations": 5},
        "task": "classification",
        "metric": "accuracy",
        "automl": {"timeout_minutes": 15, "max_trials": 10, "enable_ensembles": True},
        "sweep": {
            "model": "logistic_regression",
            "sampling": "random",
            "search_space": {"C": "uniform(0.1, 10)", "max_iter": "choice(50, 100, 200, 300)"},
            "early_termination": {"type": "median_stopping", "evaluation_interval": 1, "delay_evaluation": 5},
            "limits": {"max_total_trials": 8, "max_concurrent_trials": 2},
        },
        "deployment": {"probabilities": True},
    },
    "housing": {
        "name": "housing",
        "description": "California housing, normalized MAE, keras MLP sweep.",
        "dataset": {"path": "data/housing.csv", "format": "csv", "target": "median_house_value", "validation_fraction": 0.2},
        "task": "regression",
        "metric": "normalized_mean_absolute_error",
        "automl": {"blocked_models": ["KNN"]},
        "sweep": {
            "model": "keras_mlp",
            "search_space": {"batch_size": "choice(32, 64)", "epochs": "choice(3, 5)", "learning_rate": "loguniform(-7, -4)"},
            "early_termination": {"type": "bandit", "slack_factor": 0.15, "evaluation_interval": 2, "delay_evaluation": 2},
        },
    },
    "bank": {
        "name": "bank",
        "description": "Bank marketing, accuracy, LightGBM sweep.",
        "dataset": {"path": "data/bank.csv", "format": "csv", "target": "y", "cross_validations": 3},
        "task": "classification",
        "metric": "accuracy",
        "automl": {"allowed_models": ["LightGBM", "XGBoostClassifier", "RandomForest"]},
        "sweep": {
            "model": "lightgbm",
            "sampling": "random",  # Azure takes no early-termination policy with bayesian sampling
            "search_space": {"n_estimators": "choice(20, 40)", "learning_rate": "uniform(0.05, 0.2)"},
            "early_termination": {"type": "truncation_selection", "truncation_percentage": 20},
        },
        "deployment": {"probabilities": True, "request_timeout_ms": 3000, "max_concurrent_requests_per_instance": 2},
        "schedule": {"cron": "0 3 1 */6 *"},
    },
    "mri": {
        "name": "mri",
        "description": "Brain MRI tumour detection.",
        "dataset": {"path": "data/mri", "format": "image_folder", "validation_fraction": 0.2},
        "task": "image_classification",
        "metric": "accuracy",
        "automl": {"max_trials": 4, "image": {"model_names": ["resnet50", "vitb16r224"], "learning_rate": "uniform(0.001, 0.01)"}},
        "sweep": {
            "model": "keras_cnn",
            "search_space": {"filters": "choice(8, 16)", "epochs": "choice(2, 3)"},
            "early_termination": {"type": "bandit", "slack_amount": 0.1},
        },
    },
}


def sample_csv(source: Path, target: Path, rows: int) -> Path:
    """The header and the first `rows` data rows of a real csv (bytes as they are)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, newline="", encoding="utf-8") as f, open(target, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        for i, row in enumerate(csv.reader(f)):
            if i > rows:
                break
            writer.writerow(row)
    return target


def place_data(folder: Path, which: str, rows: int = 300) -> None:
    """Copy a sample of a real data set to folder/data/ as the base specs expect it."""
    if which == "mri":
        target = folder / "data" / "mri"
        for label in ("no", "yes"):
            files = sorted((DATA / "mri" / label).iterdir())[:12]
            (target / label).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy(f, target / label / f.name)
        return
    source, *_ = TABULAR[which]
    sample_csv(DATA / source, folder / "data" / f"{which}.csv", rows)


def write_spec(folder: Path, data: dict, filename: str = "spec.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def load(folder: Path, data: dict):
    from capc.spec import load_spec

    return load_spec(write_spec(folder, data))


def base_spec(which: str, **changes) -> dict:
    spec = copy.deepcopy(BASE_SPECS[which])
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return spec


def render_to(spec, out_dir: Path) -> dict[str, bytes]:
    """Render and write the artifacts under out_dir/<name>/ (what `capc build` writes, minus the manifest)."""
    from capc.render.render import render_artifacts

    files = render_artifacts(spec, out_dir)
    for rel, content in files.items():
        path = out_dir / spec.name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files
