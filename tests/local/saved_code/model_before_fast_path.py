"""Backend, local AutoML: the model that gets served, and its MLflow save.

This module is pickled by value into the saved model (cloudpickle), and MLflow loads it where capc is not
installed (a scoring container, another machine): it must import nothing from capc, only what the model's
own learners need (numpy, pandas, scikit-learn, FLAML). tests/test_local_automl.py loads a saved model in a
process where capc cannot be imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator


class AutoMLModel(BaseEstimator):
    """The chosen model: one FLAML model, a weighted vote of several, or a meta-learner stacked on them.

    `predict` / `predict_proba` take a DataFrame of the raw feature columns (extra columns are ignored; values
    arriving as text for numeric columns are parsed). Members are fitted `flaml.AutoML` objects, each carrying
    its own featurization. Pickled by value (see the module docstring).
    """

    def __init__(self, task=None, feature_columns=None, numeric_columns=None, members=None, weights=None,
                 stacker=None, classes=None, kind="single"):
        self.task = task
        self.feature_columns = feature_columns
        self.numeric_columns = numeric_columns
        self.members = members
        self.weights = weights
        self.stacker = stacker
        self.classes = classes
        self.kind = kind

    @property
    def classes_(self):
        return self.classes

    def _features(self, X) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(X)
            if list(X.columns) == list(range(len(X.columns))) and len(X.columns) == len(self.feature_columns):
                X.columns = list(self.feature_columns)  # a bare 2-D array, columns in training order
        missing = [c for c in self.feature_columns if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks feature column(s): {', '.join(map(str, missing))}")
        X = X[list(self.feature_columns)].copy()
        for column in X.columns:
            values = X[column]
            if column in self.numeric_columns:
                if not pd.api.types.is_numeric_dtype(values):
                    X[column] = pd.to_numeric(values, errors="coerce")
            elif not (pd.api.types.is_string_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype)):
                X[column] = values.map(lambda v: v if v is None or isinstance(v, str) or v != v else str(v)).astype(object)
        return X

    def _member_outputs(self, X) -> list[np.ndarray]:
        if self.task == "classification":
            return [np.asarray(m.predict_proba(X), dtype=float) for m in self.members]
        return [np.asarray(m.predict(X), dtype=float).ravel() for m in self.members]

    def _combined(self, X) -> np.ndarray:
        outputs = self._member_outputs(self._features(X))
        if self.kind == "stack":
            if self.task == "classification":
                return self.stacker.predict_proba(stack_features(outputs))
            return self.stacker.predict(stack_features(outputs))
        total = sum(w * o for w, o in zip(self.weights, outputs))
        return total / sum(self.weights)

    def predict_proba(self, X) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is for classification models")
        return self._combined(X)

    def predict(self, X) -> np.ndarray:
        combined = self._combined(X)
        if self.task == "classification":
            return np.asarray(self.classes)[np.argmax(combined, axis=1)]
        return combined


def stack_features(outputs: list[np.ndarray]) -> np.ndarray:
    """Meta-learner inputs: each member's class probabilities (binary: the positive one) or its prediction."""
    columns = [o[:, 1:] if o.ndim == 2 and o.shape[1] == 2 else (o if o.ndim == 2 else o[:, None]) for o in outputs]
    return np.hstack(columns)


def with_ensemble(base: AutoMLModel, ensemble: dict) -> AutoMLModel:
    """`base`'s columns and classes, with an ensemble's members, weights, stacker and kind."""
    return AutoMLModel(task=base.task, feature_columns=base.feature_columns, numeric_columns=base.numeric_columns,
                       classes=base.classes, **ensemble)


def save_mlflow_model(model: AutoMLModel, path: Path | str, feature_sample: pd.DataFrame | None) -> Path:
    """Write `model` as an MLflow model directory (sklearn flavour, cloudpickle, no capc import needed)."""
    import cloudpickle
    import mlflow.sklearn
    from mlflow.models import infer_signature

    path = Path(path)
    signature = None
    if feature_sample is not None:
        # Inferred from training rows with a gap in every column that has one. MLflow's pyfunc check then
        # refuses a missing value in an integer column (it will not turn int64 into float64 either, so
        # declaring such columns as doubles would refuse every whole number instead).
        signature = infer_signature(feature_sample, model.predict(feature_sample))
    # By value: the pickle carries the code of AutoMLModel and of capc's own FLAML learners (a fitted flaml.AutoML
    # keeps its learners' classes), so loading it needs FLAML and scikit-learn, not capc.
    modules = [sys.modules[AutoMLModel.__module__], *_learner_modules(model)]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        mlflow.sklearn.save_model(
            model, str(path), serialization_format="cloudpickle", signature=signature,
            pip_requirements=runtime_requirements(),
        )
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)
    return path


def _learner_modules(model: AutoMLModel) -> list:
    """The modules of the members' learner classes that are not FLAML's own (capc's: learners.py)."""
    found = {}
    for member in model.members or ():
        for learner in (getattr(getattr(member, "_state", None), "learner_classes", None) or {}).values():
            name = learner.__module__
            if not name.startswith("flaml.") and name in sys.modules:
                found[name] = sys.modules[name]
    return list(found.values())


def runtime_requirements() -> list[str]:
    """What loading the pickled model needs, pinned to the versions it was trained with."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in ("flaml", "scikit-learn", "lightgbm", "xgboost", "pandas", "numpy", "scipy", "cloudpickle"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return out
