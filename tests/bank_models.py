"""Small real bank-marketing MLflow models, for the tests that serve or measure one (tests/serve, tests/azure).

`save_model` fits a scikit-learn Pipeline on a few hundred real rows and saves it with mlflow.sklearn.save_model, as
the generated train.py does; `save_sleeping_model` saves such a model behind a sleep on every call: a deliberately
slow scoring path, for the serving budget.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pandas as pd
from sklearn.base import BaseEstimator

from repo import DATA as REPO_DATA

DATA = REPO_DATA / "bankmarketing" / "bankmarketing_train.csv"
TARGET = "y"


def bank_frame(rows: int | None = None, skip: int = 0) -> pd.DataFrame:
    frame = pd.read_csv(DATA, nrows=(skip + rows) if rows else None)
    return frame.iloc[skip:].reset_index(drop=True)


def save_model(target: Path, rows: int = 300, skip: int = 0, classifier: str = "logistic", pip_requirements: list[str] | None = None) -> Path:
    """Fit a preprocessing + classifier Pipeline on real rows and save it as an MLflow model at `target`.

    pip_requirements given, MLflow skips inferring them (seconds: it loads the model in a subprocess)."""
    import mlflow.sklearn
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = bank_frame(rows, skip)
    features, labels = frame.drop(columns=TARGET), frame[TARGET]
    categorical = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    numeric = [c for c in features.columns if c not in categorical]
    if classifier == "logistic":
        from sklearn.linear_model import LogisticRegression

        estimator = LogisticRegression(max_iter=1000)
    else:
        from sklearn.tree import DecisionTreeClassifier

        estimator = DecisionTreeClassifier(max_depth=4, random_state=0)
    pipeline = Pipeline([
        ("preprocess", ColumnTransformer([
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("numeric", StandardScaler(), numeric),
        ])),
        ("model", estimator),
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(features, labels)
        # cloudpickle, as the generated train.py saves its models
        mlflow.sklearn.save_model(pipeline, str(target), serialization_format="cloudpickle", pip_requirements=pip_requirements)
    return target


class SleepingModel(BaseEstimator):
    """A deliberately slow model: the real one behind a sleep on every call."""

    def __init__(self, inner=None, sleep_s=0.03):
        self.inner = inner
        self.sleep_s = sleep_s

    @property
    def classes_(self):
        return self.inner.classes_

    def predict(self, X):
        time.sleep(self.sleep_s)
        return self.inner.predict(X)


def save_sleeping_model(target: Path, model: Path, sleep_s: float) -> Path:
    """The MLflow model at `model` behind a sleep of `sleep_s` per call, saved at `target` (pickled by value: it
    loads wherever this module is not importable)."""
    import cloudpickle
    import mlflow.sklearn

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inner = mlflow.sklearn.load_model(str(model))
            mlflow.sklearn.save_model(SleepingModel(inner, sleep_s), str(target), serialization_format="cloudpickle", pip_requirements=[])
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    return target


class LockingModel(BaseEstimator):
    """Fast enough alone, slow under concurrency: every call holds one lock that all processes share (a file lock)
    for `hold_s`, so an inference server's workers take turns however many there are."""

    def __init__(self, inner=None, hold_s=0.05, lock_path=""):
        self.inner = inner
        self.hold_s = hold_s
        self.lock_path = lock_path

    @property
    def classes_(self):
        return self.inner.classes_

    def predict(self, X):
        import fcntl

        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                time.sleep(self.hold_s)
                return self.inner.predict(X)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def save_locking_model(target: Path, model: Path, hold_s: float) -> Path:
    """The MLflow model at `model` behind a lock held `hold_s` per call (the lock file beside `target`)."""
    import cloudpickle
    import mlflow.sklearn

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inner = mlflow.sklearn.load_model(str(model))
            locking = LockingModel(inner, hold_s, str(target.parent / f"{target.name}.lock"))
            mlflow.sklearn.save_model(locking, str(target), serialization_format="cloudpickle", pip_requirements=[])
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    return target
