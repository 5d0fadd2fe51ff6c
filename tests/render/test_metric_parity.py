"""One definition of each metric: the local AutoML engine and the generated trial script score the same predictions
alike, for every primary metric a spec may name (binary, multi-class with a class absent from the rows,
regression with zeros), to 1e-12. Also: the job folder carries the metrics module, byte for byte capc's own.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from capc import azure_metrics, azure_names
from capc.local.automl.search import TrialScorer
from render_specs import TABULAR, base_spec, load, place_data, render_to

PACKAGE = Path(azure_metrics.__file__).resolve()


def trial_module(tmp_path: Path, which: str, metric: str):
    """The spec's generated src/train.py, imported as a module (it imports the azure_metrics.py beside it)."""
    place_data(tmp_path, which)
    _, target, task, _ = TABULAR[which]
    data = base_spec("bank", name=f"parity-{which}", task=task, metric=metric,
                     dataset={"path": f"data/{which}.csv", "format": "csv", "target": target, "validation_fraction": 0.2},
                     automl={}, sweep={"model": "random_forest", "search_space": {"n_estimators": "choice(10)"}},
                     deployment={"probabilities": task == "classification"})
    data.pop("schedule")
    files = render_to(load(tmp_path, data), tmp_path / "generated")
    assert files["src/azure_metrics.py"] == PACKAGE.read_bytes()
    script = tmp_path / "generated" / f"parity-{which}" / "src" / "train.py"
    module_spec = importlib.util.spec_from_file_location(f"parity_trial_{which}", script)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def probabilities(rng, rows: int, n_classes: int, absent: int | None = None) -> np.ndarray:
    proba = np.round(rng.dirichlet(np.ones(n_classes), rows), 2)  # rounding makes tied scores
    if absent is not None:
        proba[:, absent] = 0.0  # never predicted either
    return proba / proba.sum(axis=1, keepdims=True)


CLASSIFICATION_CASES = {
    # name: (data set whose trial script scores it, class labels, absent class)
    "binary": ("bank", np.array(["no", "yes"], dtype=object), None),
    "multiclass-absent-class": ("digits", np.arange(10), 7),
}


@pytest.mark.parametrize("case", sorted(CLASSIFICATION_CASES))
def test_engine_and_trial_script_agree_on_every_classification_metric(tmp_path, case):
    which, classes, absent = CLASSIFICATION_CASES[case]
    trial = trial_module(tmp_path, which, "accuracy")
    rng = np.random.default_rng(7)
    codes = rng.integers(0, len(classes), 400)
    if absent is not None:
        codes[codes == absent] = (absent + 1) % len(classes)
    proba = probabilities(rng, 400, len(classes), absent)
    predicted = np.argmax(proba, axis=1)
    assert absent is None or (absent not in codes and absent not in predicted)
    metrics = azure_names.AUTOML_METRICS["classification"]
    engine = TrialScorer("classification", "accuracy", len(classes), 1.0).score(codes, proba)
    for metric in metrics:
        by_trial = trial.azure_metric(metric, classes[codes], classes[predicted], proba, classes, 1.0)
        assert np.isfinite(by_trial), metric
        assert by_trial == pytest.approx(engine[metric], abs=1e-12, rel=0), metric


def test_engine_and_trial_script_agree_on_every_regression_metric(tmp_path):
    trial = trial_module(tmp_path, "housing", "r2_score")
    rng = np.random.default_rng(3)
    y = np.round(rng.normal(0, 50, 300))
    y[::7] = 0.0
    y_pred = y + rng.normal(0, 20, 300)
    y_pred[::5] = 0.0
    y_range = azure_metrics.target_range(y)
    engine = TrialScorer("regression", "r2_score", 0, y_range).score(y, y_pred)
    for metric in azure_names.AUTOML_METRICS["regression"]:
        by_trial = trial.azure_metric(metric, y, y_pred, None, None, y_range)
        assert by_trial == pytest.approx(engine[metric], abs=1e-12, rel=0), metric


def test_norm_macro_recall_is_floored_and_counts_chance_over_the_tasks_classes():
    # Three classes, class 2 neither true nor predicted: recall macro over classes 0 and 1 is 0.5; chance is 1/3.
    y, predicted = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0])
    assert azure_metrics.norm_macro_recall(y, predicted, None, 3) == pytest.approx((0.5 - 1 / 3) / (1 - 1 / 3))
    assert azure_metrics.norm_macro_recall(y, 1 - y, None, 2) == 0.0  # worse than chance: 0, Azure's range is [0, 1]


def test_metrics_module_imports_nothing_of_capc():
    import ast

    tree = ast.parse(PACKAGE.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "typing", "numpy", "scipy.stats"}
