"""Backend, local AutoML: FLAML learners capc adds for Azure algorithms FLAML has none for (Azure's SVM).

A fitted flaml.AutoML keeps its learner's class, so this module is pickled by value into the saved model with
model.py (save_mlflow_model) and, like model.py, imports nothing from capc: MLflow loads the model where capc is
not installed. Every flaml.AutoML that capc fits gets these learners first (`add_learners`).
"""

from __future__ import annotations

import time

import numpy as np
from flaml import tune
from flaml.automl.model import SKLearnEstimator

# Folds of the temperature fit (CalibratedClassifierCV, ensemble=False): 3 fits on 2/3 of the rows beside the
# final one, about 2.3 times one fit (SVC's time grows with the square of the rows); probability=True cost ~4x.
CALIBRATION_FOLDS = 3


class KernelSVCEstimator(SKLearnEstimator):
    """Azure's SVM: scikit-learn's kernel SVC (RBF), on one-hot categories and scaled numeric columns.

    - C and gamma are searched on log scales from SVC's defaults (C=1, gamma="scale"); gamma is searched as a
      multiple of "scale" (1 / (features x variance of the scaled inputs)), so one range suits any width. C stops
      at 256: libsvm's iterations grow with C, and a FLAML trial cannot be stopped inside a fit.
    - Scaling is in the learner, since FLAML's featurization scales nothing and an RBF kernel needs it: per column
      (standard) or into [0, 1] (minmax, Azure's MinMaxScaler: columns that share one unit, such as pixels, keep
      their proportions better; on the digits 0.987 against 0.981 in 5-fold CV). The search picks.
    - Probabilities, which every Azure metric is scored from, come from temperature scaling of the decision
      function (one scale fitted on out-of-fold decision values): it keeps SVC's own class ranking, so accuracy
      is SVC's, and it calibrates nearly as well as SVC's probability=True (a 5-fold Platt fit, deprecated in
      scikit-learn 1.9, whose argmax may disagree with predict) at about half its cost. A class too rare for the
      calibration folds leaves the probabilities a softmax of the raw decision values.
    """

    @classmethod
    def search_space(cls, data_size, task, **params):
        return {
            "C": {"domain": tune.loguniform(lower=2**-5, upper=2**8), "init_value": 1.0},
            "gamma_factor": {"domain": tune.loguniform(lower=2**-6, upper=2**6), "init_value": 1.0},
            "scaling": {"domain": tune.choice(["standard", "minmax"]), "init_value": "standard"},
        }

    @classmethod
    def cost_relative2lgbm(cls) -> float:
        # Its first trial waits until the cheaper learners have had theirs; the row limit (names.ROW_LIMITS)
        # keeps it to data where a fit takes seconds.
        return 8.0

    def __init__(self, task="binary", n_jobs=None, **config):
        super().__init__(task, **config)  # n_jobs dropped: libsvm runs on one thread
        assert self._task.is_classification(), "kernel SVC is for classification only"

    def _fit(self, X_train, y_train, **kwargs):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.pipeline import Pipeline
        from sklearn.svm import SVC

        started = time.time()
        params = dict(self.params)
        seed = params.pop("random_seed", None)
        features = _feature_scaler(X_train, str(params.pop("scaling", "standard")))
        X = features.fit_transform(X_train)
        variance = float(np.var(X)) or 1.0
        gamma = float(params.pop("gamma_factor", 1.0)) / (X.shape[1] * variance)
        svc = SVC(C=float(params.pop("C", 1.0)), gamma=gamma, kernel="rbf", random_state=seed)
        y = np.asarray(y_train)  # CalibratedClassifierCV reads y[0] by position
        rarest = int(np.min(np.unique(y, return_counts=True)[1]))
        folds = min(CALIBRATION_FOLDS, rarest)
        model = CalibratedClassifierCV(svc, method="temperature", cv=folds, ensemble=False) if folds >= 2 else svc
        model.fit(X, y)
        self._model = Pipeline([("features", features), ("svc", model)])
        return time.time() - started

    def predict_proba(self, X, **kwargs):
        X = self._preprocess(X)
        model = self._model.named_steps["svc"]
        if hasattr(model, "predict_proba"):
            return self._model.predict_proba(X)
        decision = np.asarray(self._model.decision_function(X), dtype=float)
        if decision.ndim == 1:  # binary: the positive class's margin
            decision = np.column_stack([-decision, decision]) / 2
        decision = np.exp(decision - decision.max(axis=1, keepdims=True))
        return decision / decision.sum(axis=1, keepdims=True)

    def _preprocess(self, X):
        return X  # categories stay categories: the learner's own encoder one-hot encodes them


def _feature_scaler(X, scaling: str):
    """One-hot categories (unseen ones: all zeros), numeric columns scaled; fitted by the caller."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    scaler = MinMaxScaler() if scaling == "minmax" else StandardScaler()
    if not isinstance(X, pd.DataFrame):
        return scaler
    categories = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    numbers = [c for c in X.columns if c not in categories]
    return ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), categories), ("numbers", scaler, numbers)],
        sparse_threshold=0,
    )


# FLAML estimator name -> learner class, for every learner capc adds (names.ALGORITHM_ESTIMATORS uses the names).
LEARNERS = {"kernel_svc": KernelSVCEstimator}


def add_learners(automl) -> None:
    """Give a new flaml.AutoML capc's learners (FLAML keeps them per object, set before `fit`)."""
    for name, learner in LEARNERS.items():
        automl.add_learner(name, learner)
