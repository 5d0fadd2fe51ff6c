"""Backend, local AutoML: run an Azure `type: automl` tabular job (automl_job.yml) on FLAML, on this machine.

Stage: reads the settings of the generated job (`AutoMLSettings.from_job_yaml`), searches with FLAML under the
job's limits, reports every candidate as it finishes (`on_candidate`; the caller turns it into a child run),
builds Azure's two ensembles from the candidates' validation predictions, and returns the best model wrapped so
that it predicts from the raw feature columns and saves as an MLflow model.

How Azure's settings map (what FLAML cannot do is said here, and at run time in `AutoMLResult.notes`):
- primary_metric: scored by capc with Azure's definition (automl_names.SCORERS), given to FLAML as a custom
  metric; every candidate carries all its task's Azure metrics, in Azure's direction.
- n_cross_validations -> FLAML `eval_method="cv"` (stratified for classification); validation_data_size ->
  holdout; neither -> Azure's rule: over 20,000 rows a 10% holdout, else 3 folds (10 below 1,000 rows).
- timeout_minutes -> FLAML `time_budget` (the search; ensembles and the final refit come out of what is left);
  trial_timeout_minutes -> `train_time_limit`; max_trials and exit_score end the search after the trial that
  reaches them; enable_early_termination -> FLAML `early_stop` (its convergence test: FLAML's trials are many
  and small, so Azure's "no gain in 20 iterations" would stop it long before its search has converged).
- Warm start: each learner's first trial is FLAML's zero-shot configuration for this data (`starting_points=
  "data"`: a portfolio meta-learned offline and shipped inside FLAML, picked by the data's size and shape), as
  Azure's first trials are its recommender's configurations. FLAML's own cold start (4 trees, 4 leaves, growing
  from there) spends a trial cap like Azure's 30-40 on toy models within seconds: housing (2-minute budget,
  40 trials) stopped after 8 s at a 31,342 holdout MAE; warm-started, it used the budget and reached 28,991.
- max_concurrent_trials: not honoured; FLAML runs trials one after another (parallel trials need Ray or
  Spark), each on all cores but one (see _trial_threads).
- normalized_mean_absolute_error: LightGBM also searches its absolute-error objective, so it trains on the
  loss the job is judged by (automl_names.TRAINING_OBJECTIVES).
- enable_vote_ensemble / enable_stack_ensemble: Azure's VotingEnsemble (greedy ensemble selection with
  replacement over the candidates' out-of-fold predictions) and StackEnsemble (a logistic / elastic-net
  meta-learner over them), each scored on the same validation rows as the candidates, so the best is chosen
  fairly. FLAML's own `ensemble=True` is not used: it stacks blindly and its result has no score.
- featurization auto: FLAML's DataTransformer (strings -> categories with an "unseen" slot, median imputation,
  constant and ID-like string columns dropped); off: columns used as they are, which must then be numeric
  without missing values.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from capc import azure_names
from capc.errors import CapcError
from capc.local import automl_names as names
from capc.spec.hints import did_you_mean

TABULAR_TASKS = ("classification", "regression")
# Azure's service defaults for a job that leaves them out (TableVerticalLimitSettings).
DEFAULT_TIMEOUT_MINUTES = 360
DEFAULT_TRIAL_TIMEOUT_MINUTES = 30
DEFAULT_MAX_TRIALS = 1000
DEFAULT_PRIMARY_METRIC = {"classification": "AUC_weighted", "regression": "normalized_root_mean_squared_error"}

# Share of the timeout the search gets when ensembles are on; the rest refits ensemble members.
SEARCH_SHARE_WITH_ENSEMBLES = 0.8
ENSEMBLE_GRACE_SHARE, ENSEMBLE_GRACE_S = 0.05, 5.0
ENSEMBLE_ITERATIONS = 15  # Azure's default ensemble_iterations
ENSEMBLE_LIBRARY_SIZE = 15  # best candidates the selection draws from
STACK_MAX_MEMBERS = 6
MIN_ROWS = 10
# Where each learner's search starts: FLAML's zero-shot configurations for the data (see the module docstring).
STARTING_POINTS = "data"


# ================================================================== settings


@dataclass(frozen=True)
class AutoMLSettings:
    """The settings of one Azure AutoML tabular job, with Azure's names (algorithms in PascalCase)."""

    task: str
    primary_metric: str
    target_column: str
    n_cross_validations: int | None = None
    validation_data_size: float | None = None
    timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES
    trial_timeout_minutes: float | None = DEFAULT_TRIAL_TIMEOUT_MINUTES
    max_trials: int = DEFAULT_MAX_TRIALS
    max_concurrent_trials: int = 1
    enable_early_termination: bool = True
    exit_score: float | None = None
    allowed_algorithms: tuple[str, ...] = ()
    blocked_algorithms: tuple[str, ...] = ()
    enable_vote_ensemble: bool = True
    enable_stack_ensemble: bool = True
    featurization: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TABULAR_TASKS:
            raise CapcError(
                f"AutoML task `{self.task}` cannot run on the local tabular engine; it runs classification and regression.",
            )
        if self.primary_metric not in azure_names.AUTOML_METRICS[self.task]:
            raise CapcError(
                f"`{self.primary_metric}` is not an Azure AutoML primary metric for {self.task}.",
                did_you_mean(self.primary_metric, azure_names.AUTOML_METRICS[self.task]),
            )
        for name in self.allowed_algorithms + self.blocked_algorithms:
            if name not in names.ALGORITHM_ESTIMATORS[self.task]:
                raise CapcError(
                    f"`{name}` is not an Azure AutoML {self.task} algorithm.",
                    did_you_mean(name, names.ALGORITHM_ESTIMATORS[self.task]),
                )
        if self.n_cross_validations is not None and self.n_cross_validations < 2:
            raise CapcError(f"n_cross_validations must be at least 2, not {self.n_cross_validations}.")
        if self.validation_data_size is not None and not 0 < self.validation_data_size < 1:
            raise CapcError(
                f"validation_data_size must be between 0 and 1 (a fraction of the rows), not {self.validation_data_size}."
            )
        if self.n_cross_validations is not None and self.validation_data_size is not None:
            raise CapcError("an AutoML job takes n_cross_validations or validation_data_size, not both.")
        if self.timeout_minutes <= 0 or (self.trial_timeout_minutes is not None and self.trial_timeout_minutes <= 0):
            raise CapcError("AutoML timeout_minutes and trial_timeout_minutes must be positive.")
        if self.max_trials < 1:
            raise CapcError(f"AutoML max_trials must be at least 1, not {self.max_trials}.")
        if self.featurization not in ("auto", "off"):
            raise CapcError(f"featurization mode `{self.featurization}` is not one the local engine runs; use auto or off.")

    @property
    def goal(self) -> str:
        return azure_names.AUTOML_METRICS[self.task][self.primary_metric]

    @classmethod
    def from_job_yaml(cls, job: dict) -> AutoMLSettings:
        """Settings from an Azure AutoML job mapping (automl_job.yml as loaded), with Azure's defaults."""
        task = str(job.get("task") or "")
        if task not in TABULAR_TASKS:
            raise CapcError(
                f"automl_job.yml: task `{task}` cannot run on the local tabular engine; it runs classification and regression.",
            )
        metric_spelling = job.get("primary_metric") or DEFAULT_PRIMARY_METRIC[task]
        metric = azure_names.metric_from_yaml(task, str(metric_spelling))
        if metric is None:
            raise CapcError(
                f"automl_job.yml: `{metric_spelling}` is not an Azure AutoML primary metric for {task}.",
                did_you_mean(str(metric_spelling), azure_names.AUTOML_METRICS[task]),
            )
        target = job.get("target_column_name")
        if not target:
            raise CapcError("automl_job.yml has no target_column_name.")
        limits = job.get("limits") or {}
        training = job.get("training") or {}
        mode = str((job.get("featurization") or {}).get("mode") or "auto").lower()
        folds = job.get("n_cross_validations")
        return cls(
            task=task,
            primary_metric=metric,
            target_column=str(target),
            n_cross_validations=None if folds in (None, "auto") else int(folds),
            validation_data_size=_optional(job.get("validation_data_size"), float),
            timeout_minutes=_optional(limits.get("timeout_minutes"), float) or DEFAULT_TIMEOUT_MINUTES,
            trial_timeout_minutes=_optional(limits.get("trial_timeout_minutes"), float) or DEFAULT_TRIAL_TIMEOUT_MINUTES,
            max_trials=_optional(limits.get("max_trials"), int) or DEFAULT_MAX_TRIALS,
            max_concurrent_trials=_optional(limits.get("max_concurrent_trials"), int) or 1,
            enable_early_termination=bool(limits.get("enable_early_termination", True)),
            exit_score=_optional(limits.get("exit_score"), float),
            allowed_algorithms=tuple(algorithm_name(task, n) for n in training.get("allowed_training_algorithms") or ()),
            blocked_algorithms=tuple(algorithm_name(task, n) for n in training.get("blocked_training_algorithms") or ()),
            enable_vote_ensemble=bool(training.get("enable_vote_ensemble", True)),
            enable_stack_ensemble=bool(training.get("enable_stack_ensemble", True)),
            # Azure's "custom" is auto with user transformer parameters, which the local engine does not take.
            featurization="off" if mode == "off" else "auto",
        )


def _optional(value, kind):
    return None if value is None else kind(value)


def _squash(name: str) -> str:
    return str(name).replace("_", "").replace("-", "").lower()


def algorithm_name(task: str, spelling: str) -> str:
    """Azure's PascalCase algorithm from any spelling: `light_gbm`, `LightGBM`, `lightgbm` -> `LightGBM`."""
    known = names.ALGORITHM_ESTIMATORS.get(task, {})
    found = {_squash(n): n for n in known}.get(_squash(spelling))
    if found is not None:
        return found
    message = f"automl_job.yml: `{spelling}` is not an Azure AutoML {task} algorithm"
    elsewhere = [t for t, table in names.ALGORITHM_ESTIMATORS.items() if _squash(spelling) in map(_squash, table)]
    if elsewhere:
        message += f" (it is a {elsewhere[0]} one)"
    # Suggest in the spelling the user wrote: YAML snake case or Azure's PascalCase.
    choices = [azure_names.yaml_spelling(n) for n in known] if str(spelling).lower() == str(spelling) else list(known)
    hint = did_you_mean(str(spelling), choices) or "expected one of: " + ", ".join(f"`{c}`" for c in choices)
    raise CapcError(message + ".", hint)


def resolve_estimators(settings: AutoMLSettings) -> tuple[list[str], list[str]]:
    """(FLAML estimators to search, Azure algorithms skipped because FLAML cannot run them)."""
    table = names.ALGORITHM_ESTIMATORS[settings.task]
    chosen = [a for a in (settings.allowed_algorithms or tuple(table)) if a not in settings.blocked_algorithms]
    skipped = [a for a in chosen if table[a] is None]
    wanted = {est for a in chosen for est in (table[a] or ())}
    return [est for est in names.ESTIMATOR_ORDER if est in wanted], skipped


def azure_algorithm(task: str, estimator: str) -> str:
    """FLAML estimator -> the Azure algorithm it stands for (first match in the table)."""
    for algorithm, estimators in names.ALGORITHM_ESTIMATORS[task].items():
        if estimators and estimator in estimators:
            return algorithm
    return estimator


# ================================================================== results


@dataclass(frozen=True)
class Candidate:
    """One model AutoML evaluated: a child run. `value` is the primary metric, in Azure's direction."""

    index: int
    estimator: str  # Azure algorithm name, or VotingEnsemble / StackEnsemble
    engine_estimator: str  # FLAML's name (lgbm, xgb_limitdepth, ...) or the ensemble name
    params: dict
    value: float
    metrics: dict  # every Azure metric of the task (primary included)
    duration_s: float
    status: str  # completed | failed
    train_rows: int  # rows it trained on (FLAML starts large data on a sample)


@dataclass
class AutoMLResult:
    settings: AutoMLSettings
    best: Candidate
    candidates: list[Candidate]
    model: AutoMLModel
    skipped_algorithms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    models: dict[int, AutoMLModel] = field(default_factory=dict)  # candidate index -> fitted model, where one is kept
    feature_sample: pd.DataFrame | None = None  # a few raw training rows: signature and smoke checks

    def save_mlflow_model(self, path: Path | str) -> Path:
        """Write the best model as an MLflow model directory (sklearn flavour, cloudpickle, no capc import needed)."""
        import cloudpickle
        import mlflow.sklearn
        from mlflow.models import infer_signature

        path = Path(path)
        signature = None
        if self.feature_sample is not None:
            # Inferred from training rows with a gap in every column that has one. MLflow's pyfunc check then
            # refuses a missing value in an integer column (it will not turn int64 into float64 either, so
            # declaring such columns as doubles would refuse every whole number instead).
            signature = infer_signature(self.feature_sample, self.model.predict(self.feature_sample))
        module = sys.modules[AutoMLModel.__module__]
        # By value: the pickle carries AutoMLModel's code, so loading it needs FLAML and its learners, not capc.
        cloudpickle.register_pickle_by_value(module)
        try:
            mlflow.sklearn.save_model(
                self.model, str(path), serialization_format="cloudpickle", signature=signature,
                pip_requirements=runtime_requirements(),
            )
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        return path


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


# ================================================================== the model that gets served


class AutoMLModel(BaseEstimator):
    """The chosen model: one FLAML model, a weighted vote of several, or a meta-learner stacked on them.

    `predict` / `predict_proba` take a DataFrame of the raw feature columns (extra columns are ignored; values
    arriving as text for numeric columns are parsed). Members are fitted `flaml.AutoML` objects, each carrying
    its own featurization. Pickled by value, so this class must reference nothing from capc.
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


# ================================================================== the search


class _TrialScorer:
    """FLAML's custom metric: scores a fitted trial model on the validation rows with every Azure metric.

    It also keeps the validation predictions of the trial under way (one entry per fold), which the ensembles
    are built from; FLAML's own loss is 1 - value for "higher is better" metrics, as for its built-ins.
    """

    def __init__(self, task: str, primary: str, n_classes: int, y_range: float):
        self.task = task
        self.primary = primary
        self.n_classes = n_classes
        self.y_range = y_range
        self.scorers = names.SCORERS[task]
        self.higher_is_better = azure_names.AUTOML_METRICS[task][primary] == azure_names.MAXIMIZE
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __reduce__(self):
        # The fitted flaml.AutoML keeps its metric; in the saved model it becomes the metric's name, so
        # loading the model does not need capc.
        return (str, (self.primary,))

    def __call__(self, X_val, y_val, estimator, labels, X_train, y_train, weight_val=None, weight_train=None,
                 config=None, groups_val=None, groups_train=None):
        start = time.perf_counter()
        y = np.asarray(y_val).astype(int if self.task == "classification" else float)
        if _timed_out(estimator):
            self.pending.append(None)
            return float("inf"), {**{name: float("nan") for name in self.scorers}, "pred_time": 0.0}
        output = self.predict(estimator, X_val)
        pred_time = (time.perf_counter() - start) / max(len(y), 1)
        self.pending.append((np.asarray(getattr(X_val, "index", np.arange(len(y)))), y, output))
        metrics = self.score(y, output)
        metrics["pred_time"] = pred_time
        return self.loss(metrics[self.primary]), metrics

    def predict(self, estimator, X) -> np.ndarray:
        if self.task != "classification":
            return np.asarray(estimator.predict(X), dtype=float).ravel()
        proba = np.asarray(estimator.predict_proba(X), dtype=float)
        if proba.shape[1] != self.n_classes:  # a fold whose training part lacked a class
            full = np.zeros((proba.shape[0], self.n_classes))
            full[:, np.asarray(estimator.classes_, dtype=int)] = proba
            proba = full
        return proba

    def score(self, y: np.ndarray, output: np.ndarray, only: str | None = None) -> dict[str, float]:
        metrics = {}
        for name, scorer in self.scorers.items():
            if only is not None and name != only:
                continue
            try:
                value = scorer(y, output) if self.task == "classification" else scorer(y, output, self.y_range)
            except ValueError:  # e.g. AUC on a fold with one class, predictions with NaN
                value = float("nan")
            metrics[name] = value
        return metrics

    def loss(self, value: float) -> float:
        if not math.isfinite(value):
            return float("inf")
        return 1.0 - value if self.higher_is_better else value


def _timed_out(estimator) -> bool:
    """FLAML swaps in a Dummy model when a trial hits its time limit; Azure would call that trial failed."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    return isinstance(getattr(estimator, "model", None), (DummyClassifier, DummyRegressor))


@dataclass(eq=False)
class _TrialRecord:
    candidate: Candidate
    output: np.ndarray | None  # validation predictions, in the order of the shared validation rows
    config: dict
    trial_time_s: float


class _TrialListener:
    """Turns each finished FLAML trial into a Candidate, reports it, and says when the search must stop."""

    def __init__(self, settings: AutoMLSettings, scorer: _TrialScorer, folds: int,
                 on_candidate: Callable[[Candidate], None] | None):
        self.settings = settings
        self.scorer = scorer
        self.folds = folds
        self.on_candidate = on_candidate
        self.records: list[_TrialRecord] = []
        self.validation_rows: np.ndarray | None = None
        self.validation_y: np.ndarray | None = None
        self.stop_reason: str | None = None

    def trial_finished(self, search_state, estimator: str, full_rows: int) -> bool:
        pending, self.scorer.pending = self.scorer.pending, []
        logged = dict(search_state.metric_for_logging or {})
        logged.pop("pred_time", None)
        metrics = {k: float(v) for k, v in logged.items() if k in self.scorer.scorers}
        value = metrics.get(self.settings.primary_metric, float("nan"))
        config = {k: _plain(v) for k, v in (search_state.config or {}).items() if k != "FLAML_sample_size"}
        rows = int(search_state.sample_size or full_rows)
        candidate = Candidate(
            index=len(self.records),
            estimator=azure_algorithm(self.settings.task, estimator),
            engine_estimator=estimator,
            params=config,
            value=value,
            metrics=metrics,
            duration_s=float(search_state.trial_time or 0.0),
            status="completed" if math.isfinite(value) else "failed",
            train_rows=rows,
        )
        output = self._validation_output(pending) if rows == full_rows and candidate.status == "completed" else None
        self.records.append(_TrialRecord(candidate, output, config, candidate.duration_s))
        self._forget_weak_outputs()
        if self.on_candidate is not None:
            self.on_candidate(candidate)
        return self._should_stop(candidate)

    def _validation_output(self, pending) -> np.ndarray | None:
        # Every full-size trial sees the same folds in the same order; anything else (a sampled or broken
        # trial) is not comparable and stays out of the ensembles.
        if len(pending) != self.folds or any(p is None for p in pending):
            return None
        rows = np.concatenate([p[0] for p in pending])
        if self.validation_rows is None:
            self.validation_rows = rows
            self.validation_y = np.concatenate([p[1] for p in pending])
        elif len(rows) != len(self.validation_rows) or not np.array_equal(rows, self.validation_rows):
            return None
        return np.concatenate([p[2] for p in pending])

    def _forget_weak_outputs(self) -> None:
        """Bound memory: keep the outputs an ensemble could still draw on (see ensemble_library)."""
        kept = [r for r in self.records if r.output is not None]
        if len(kept) > 4 * ENSEMBLE_LIBRARY_SIZE:
            keep = {id(r) for r in ensemble_library(kept, self.settings.goal, 2 * ENSEMBLE_LIBRARY_SIZE)}
            for record in kept:
                if id(record) not in keep:
                    record.output = None

    def _should_stop(self, candidate: Candidate) -> bool:
        exit_score = self.settings.exit_score
        if exit_score is not None and candidate.status == "completed":
            maximize = self.settings.goal == azure_names.MAXIMIZE
            if candidate.value >= exit_score if maximize else candidate.value <= exit_score:
                self.stop_reason = f"exit_score {exit_score} reached by candidate {candidate.index} ({candidate.value:.6g})"
                return True
        if len(self.records) >= self.settings.max_trials:
            self.stop_reason = f"max_trials {self.settings.max_trials} reached"
            return True
        return False


def _plain(value):
    """numpy scalars -> Python ones, so params log and compare cleanly."""
    return value.item() if isinstance(value, np.generic) else value


def _ranked(records: list[_TrialRecord], goal: str) -> list[_TrialRecord]:
    sign = -1.0 if goal == azure_names.MAXIMIZE else 1.0
    done = [r for r in records if r.candidate.status == "completed"]
    return sorted(done, key=lambda r: (sign * r.candidate.value, r.candidate.index))


def best_per_learner(records: list[_TrialRecord], goal: str) -> list[_TrialRecord]:
    """The best trial of each FLAML learner, best first."""
    seen, out = set(), []
    for record in _ranked(records, goal):
        if record.candidate.engine_estimator not in seen:
            seen.add(record.candidate.engine_estimator)
            out.append(record)
    return out


def ensemble_library(records: list[_TrialRecord], goal: str, size: int) -> list[_TrialRecord]:
    """What ensembles draw from: the `size` best trials, plus the best of every other learner, since the
    top of the ranking is often one learner's near-identical neighbours and ensembles gain from difference."""
    top = _ranked(records, goal)[:size]
    return top + [r for r in best_per_learner(records, goal) if r not in top]


def _searching_automl_class():
    from flaml import AutoML

    class SearchingAutoML(AutoML):
        """flaml.AutoML that tells capc about each trial. FLAML 2.7 has no public per-trial callback;
        `_log_trial` is where it records every trial when log_type="all", so the hook sits there."""

        capc_listener: _TrialListener | None = None

        def _log_trial(self, search_state, estimator):
            super()._log_trial(search_state, estimator)
            listener = self.capc_listener
            if listener is not None and listener.trial_finished(search_state, estimator, self._state.data_size[0]):
                # The search loop ends once time_from_start >= time_budget >= 0; FLAML resets the budget for
                # its final refit, so only the search stops.
                self._state.time_budget = 0

    return SearchingAutoML


@contextmanager
def _quiet_learners():
    """Learners' warnings and FLAML's log lines would garble the caller's live progress display; threads capped."""
    from threadpoolctl import threadpool_limits

    flaml_logger = logging.getLogger("flaml")
    level = flaml_logger.level
    flaml_logger.setLevel(logging.ERROR)
    try:
        # Learners without an n_jobs knob (sklearn's histogram boosting, BLAS) follow OpenMP's default of
        # every core; hold them to the trial's thread count too.
        with warnings.catch_warnings(), threadpool_limits(limits=_trial_threads()):
            warnings.simplefilter("ignore")
            yield
    finally:
        flaml_logger.setLevel(level)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _trial_threads() -> int:
    """Threads per trial: all cores but one. Most FLAML trials are small models, for which OpenMP start-up
    and spin-waiting cost more than a second thread gains, and on a busy 2-core machine a 2-thread LightGBM
    fit measured 12x slower than a 1-thread one; the spare core also keeps progress and tracking responsive."""
    return max(1, _cores() - 1)


def _objective_choices(metric: str, estimators: list[str]) -> dict | None:
    """FLAML custom_hp adding the metric's training objectives to the learners that have them."""
    from flaml import tune

    choices = names.TRAINING_OBJECTIVES.get(metric, {})
    space = {
        est: {"objective": {"domain": tune.choice(list(options)), "init_value": options[0]}}
        for est, options in choices.items() if est in estimators
    }
    return space or None


def _validation_plan(settings: AutoMLSettings, rows: int) -> tuple[dict, int, str]:
    """(FLAML fit arguments, folds the metric is called per trial, description)."""
    if settings.n_cross_validations:
        folds = settings.n_cross_validations
    elif settings.validation_data_size:
        return ({"eval_method": "holdout", "split_ratio": settings.validation_data_size}, 1,
                f"{settings.validation_data_size:.0%} holdout")
    elif rows > 20_000:  # Azure's rule when the job names neither
        return {"eval_method": "holdout", "split_ratio": 0.1}, 1, "10% holdout (Azure's default above 20,000 rows)"
    else:
        folds = 10 if rows < 1_000 else 3
    if folds > rows // 2:
        raise CapcError(f"{folds}-fold cross-validation needs at least {2 * folds} rows; the training data has {rows}.")
    return {"eval_method": "cv", "n_splits": folds}, folds, f"{folds}-fold cross-validation"


def _training_data(frame, settings: AutoMLSettings, notes: list[str]):
    """(features, target, label classes or None): the checks no model can get past, as CapcErrors."""
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise CapcError("the AutoML training data has no rows; check the dataset path and any filters in the spec.")
    target = settings.target_column
    if target not in frame.columns:
        shown = ", ".join(f"`{c}`" for c in list(frame.columns)[:20])
        raise CapcError(
            f"target column `{target}` is not in the AutoML training data (columns: {shown}).",
            did_you_mean(target, map(str, frame.columns)),
        )
    unlabeled = int(frame[target].isna().sum())
    if unlabeled:
        frame = frame[frame[target].notna()]
        notes.append(f"dropped {unlabeled} rows whose target `{target}` is missing")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise CapcError(f"the AutoML training data has no feature columns besides the target `{target}`.")
    if len(frame) < MIN_ROWS:
        raise CapcError(
            f"AutoML needs at least {MIN_ROWS} labelled rows to train and validate; the training data has {len(frame)}."
        )
    y = frame[target]
    classes = None
    if settings.task == "classification":
        try:
            classes = np.sort(y.unique())
        except TypeError:  # labels of mixed types (numbers and text) only order as text
            y = y.astype(str)
            classes = np.sort(y.unique())
        if len(classes) < 2:
            raise CapcError(
                f"target column `{target}` holds one class only (`{classes[0]}`); classification needs at least two.",
            )
    else:
        numeric = pd.to_numeric(y, errors="coerce")
        if numeric.isna().any():
            bad = y[numeric.isna()].iloc[0]
            raise CapcError(f"regression target `{target}` must be numeric; it holds values such as `{bad}`.")
        if numeric.max() == numeric.min():
            raise CapcError(f"regression target `{target}` is constant ({numeric.iloc[0]}); there is nothing to learn.")
        y = numeric.astype(float)
    if settings.featurization == "off":
        text = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
        gaps = [str(c) for c in features.columns if features[c].isna().any()]
        if text or gaps:
            problem = f"non-numeric columns ({', '.join(text)})" if text else f"missing values (in {', '.join(gaps)})"
            raise CapcError(
                f"featurization is off, so AutoML uses the columns as they are, but the data has {problem}.",
                "set automl.featurization to auto, or clean the data first",
            )
    return features.reset_index(drop=True), y.reset_index(drop=True), classes


def run_automl(frame: pd.DataFrame, settings: AutoMLSettings, on_candidate: Callable[[Candidate], None] | None = None,
               log_dir: Path | None = None) -> AutoMLResult:
    """Search for the best model of `settings.task` on `frame` (features and target), as the Azure job would."""
    started = time.monotonic()
    deadline = started + settings.timeout_minutes * 60
    notes: list[str] = []
    X, y, classes = _training_data(frame, settings, notes)
    estimators, skipped = resolve_estimators(settings)
    if skipped:
        notes.append(f"skipped {', '.join(skipped)}: FLAML has no such learner")
    if not estimators:
        raise CapcError(
            f"none of the algorithms this job allows can run locally ({', '.join(skipped) or 'all blocked'}).",
            "allow at least one of " + ", ".join(a for a, e in names.ALGORITHM_ESTIMATORS[settings.task].items() if e),
        )
    if settings.max_concurrent_trials > 1:
        notes.append(f"max_concurrent_trials {settings.max_concurrent_trials}: trials run one at a time here, "
                     f"each on {_trial_threads()} thread(s)")
    plan, folds, plan_text = _validation_plan(settings, len(X))
    notes.append(f"validation: {plan_text}")

    if classes is not None:  # FLAML sees label codes 0..K-1, the model maps them back
        y_fit = pd.Series(np.searchsorted(classes, y.to_numpy()), name=y.name)
    else:
        y_fit = y
    y_range = float(y.max() - y.min()) if classes is None else 1.0
    scorer = _TrialScorer(settings.task, settings.primary_metric, len(classes) if classes is not None else 0, y_range)
    listener = _TrialListener(settings, scorer, folds, on_candidate)
    ensembles = settings.enable_vote_ensemble or settings.enable_stack_ensemble
    search_budget = settings.timeout_minutes * 60 * (SEARCH_SHARE_WITH_ENSEMBLES if ensembles else 1.0)

    custom_hp = _objective_choices(settings.primary_metric, estimators)
    automl = _searching_automl_class()()
    automl.capc_listener = listener
    log_file = ""
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        log_file = str(Path(log_dir) / "flaml_trials.jsonl")
    fit_args = dict(
        task=settings.task,
        metric=scorer,
        estimator_list=list(estimators),  # FLAML reorders it in place (zero-shot puts the suggested learner first)
        starting_points=STARTING_POINTS,
        time_budget=search_budget,
        # FLAML does not score a lone trial; max_trials 1 is enforced by the listener instead.
        max_iter=max(2, settings.max_trials),
        train_time_limit=settings.trial_timeout_minutes * 60 if settings.trial_timeout_minutes else None,
        early_stop=settings.enable_early_termination,
        log_type="all",
        log_file_name=log_file,
        n_jobs=_trial_threads(),
        seed=settings.seed,
        verbose=0,
        skip_transform=settings.featurization == "off",
        retrain_full=True,
        custom_hp=custom_hp,
        **plan,
    )
    try:
        with _quiet_learners():
            automl.fit(X, y_fit, **fit_args)
    finally:
        automl.capc_listener = None  # the fitted object is pickled into the model; it must not hold the run
    notes.append(f"search: {len(listener.records)} trials in {time.monotonic() - started:.0f}s "
                 f"(search budget {search_budget:.0f}s, best model refitted on all rows)")
    if listener.stop_reason:
        notes.append(f"search stopped: {listener.stop_reason}")
    elif settings.enable_early_termination and time.monotonic() - started < 0.9 * search_budget:
        notes.append("search ended early: FLAML judged it converged (enable_early_termination)")
    candidates = [r.candidate for r in listener.records]
    completed = [c for c in candidates if c.status == "completed"]
    if not completed or automl.best_estimator is None:
        raise CapcError(
            f"AutoML finished no candidate within {settings.timeout_minutes:g} minutes "
            f"({len(candidates)} tried); raise automl.timeout_minutes or trial_timeout_minutes.",
        )
    notes.extend(_featurization_notes(automl, X))

    numeric_columns = [str(c) for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    base = AutoMLModel(task=settings.task, feature_columns=[str(c) for c in X.columns], numeric_columns=numeric_columns,
                       members=[automl], weights=[1.0], classes=classes, kind="single")
    best = _flaml_best(listener, automl, settings.goal)
    model = base
    models = {best.index: base}

    ensemble_results = []
    if ensembles and listener.validation_y is not None:
        # Azure runs its ensemble iterations even when the search used the whole budget; so does this, in a
        # bounded extra slice of time when the search overran.
        grace = max(ENSEMBLE_GRACE_S, ENSEMBLE_GRACE_SHARE * settings.timeout_minutes * 60)
        ensemble_deadline = max(deadline, time.monotonic() + grace)
        builder = _EnsembleBuilder(settings, scorer, listener, automl, X, y_fit, ensemble_deadline, notes, custom_hp)
        with _quiet_learners():
            if settings.enable_vote_ensemble:
                ensemble_results.append(builder.voting())
            if settings.enable_stack_ensemble:
                ensemble_results.append(builder.stacking())
    for built in ensemble_results:
        if built is None:
            continue
        candidate, ensemble_model = built
        candidate = replace(candidate, index=len(candidates))
        candidates.append(candidate)
        models[candidate.index] = replace_model(base, ensemble_model)
        if on_candidate is not None:
            on_candidate(candidate)
        if _better(candidate.value, best.value, settings.goal):
            best, model = candidate, models[candidate.index]
    notes.append(f"took {time.monotonic() - started:.0f}s of a {settings.timeout_minutes * 60:.0f}s budget")
    return AutoMLResult(settings, best, candidates, model, skipped, list(dict.fromkeys(notes)), models,
                        _feature_sample(X))


def _feature_sample(X: pd.DataFrame) -> pd.DataFrame:
    """Some training rows, with a missing value in each column that has any, so the signature marks it optional."""
    gaps = [X.index[X[c].isna()][0] for c in X.columns if X[c].isna().any()]
    return X.loc[list(dict.fromkeys(list(X.index[:20]) + gaps))].reset_index(drop=True)


def replace_model(base: AutoMLModel, ensemble: dict) -> AutoMLModel:
    return AutoMLModel(task=base.task, feature_columns=base.feature_columns, numeric_columns=base.numeric_columns,
                       classes=base.classes, **ensemble)


def _better(a: float, b: float, goal: str) -> bool:
    if not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if goal == azure_names.MAXIMIZE else a < b


def _flaml_best(listener: _TrialListener, automl, goal: str) -> Candidate:
    """The candidate FLAML refitted as its best model (first trial with its best loss and learner)."""
    best_loss = automl.best_loss
    for record in listener.records:
        c = record.candidate
        if c.status == "completed" and c.engine_estimator == automl.best_estimator and math.isclose(
            listener.scorer.loss(c.value), best_loss, rel_tol=1e-9, abs_tol=1e-12
        ):
            return c
    return _ranked(listener.records, goal)[0].candidate


def _featurization_notes(automl, X: pd.DataFrame) -> list[str]:
    transformer = getattr(automl, "_transformer", None)
    if not transformer:
        return []
    used = set(getattr(transformer, "_cat_columns", [])) | set(getattr(transformer, "_num_columns", []))
    dropped = [str(c) for c in X.columns if c not in used]
    return [f"featurization dropped constant or ID-like columns: {', '.join(dropped)}"] if dropped else []


# ================================================================== ensembles


class _EnsembleBuilder:
    """Azure's VotingEnsemble and StackEnsemble, from the candidates' shared validation predictions.

    Members are refitted on all the training rows (the search's best is already), within what is left of
    the timeout; a member that would not fit in time is left out, and an ensemble of fewer than two is none.
    """

    def __init__(self, settings, scorer, listener, automl, X, y_fit, deadline, notes, custom_hp):
        self.custom_hp = custom_hp
        self.settings = settings
        self.scorer = scorer
        self.goal = settings.goal
        self.y = listener.validation_y
        with_outputs = [r for r in listener.records if r.output is not None]
        self.library = ensemble_library(with_outputs, self.goal, ENSEMBLE_LIBRARY_SIZE)
        self.learners = best_per_learner(with_outputs, self.goal)
        self.folds = listener.folds
        self.automl = automl
        self.X = X
        self.y_fit = y_fit
        self.deadline = deadline
        self.notes = notes
        self.fitted: dict[int, object] = {}
        self.split_ratio = settings.validation_data_size or 0.1

    def _primary(self, output: np.ndarray) -> float:
        return self.scorer.score(self.y, output, only=self.settings.primary_metric)[self.settings.primary_metric]

    def voting(self):
        if len(self.library) < 2:
            return None
        start = time.monotonic()
        outputs = [r.output for r in self.library]
        chosen: list[int] = []
        total = np.zeros_like(outputs[0])
        best_value, best_chosen = None, None
        for _ in range(ENSEMBLE_ITERATIONS):  # greedy selection with replacement (Caruana et al.)
            step_value, step_pick = None, None
            for i, output in enumerate(outputs):
                value = self._primary((total + output) / (len(chosen) + 1))
                if step_value is None or _better(value, step_value, self.goal):
                    step_value, step_pick = value, i
            chosen.append(step_pick)
            total = total + outputs[step_pick]
            if best_value is None or _better(step_value, best_value, self.goal):
                best_value, best_chosen = step_value, list(chosen)
        counts = Counter(best_chosen)
        if len(counts) < 2:
            self.notes.append("VotingEnsemble: the selection kept a single model, so no ensemble was built")
            return None
        picks = sorted(counts, key=lambda i: (-counts[i], i))
        members = self._fit_members([self.library[i] for i in picks])
        if members is None:
            return None
        kept = [i for i in picks if self.library[i].candidate.index in members]
        weights = [counts[i] / sum(counts[j] for j in kept) for i in kept]
        output = sum(w * self.library[i].output for w, i in zip(weights, kept))
        records = [self.library[i] for i in kept]
        candidate = self._candidate(names.VOTING_ENSEMBLE, records, weights, output, time.monotonic() - start)
        model = dict(members=[members[r.candidate.index] for r in records], weights=weights, stacker=None, kind="vote")
        return candidate, model

    def stacking(self):
        records = self.learners[:STACK_MAX_MEMBERS]  # diverse members: the best candidate of each learner
        if len(records) < 2:
            return None
        if self.settings.task == "classification":
            counts = np.bincount(self.y, minlength=self.scorer.n_classes)
            if counts.min() < 5:  # the meta-learner's 5 folds each need every class
                self.notes.append("StackEnsemble: too few validation rows of some class to fit a meta-learner")
                return None
        start = time.monotonic()
        members = self._fit_members(records)
        if members is None:
            return None
        records = [r for r in records if r.candidate.index in members]
        features = stack_features([r.output for r in records])
        meta, output = self._meta_learner(features)
        meta.fit(features, self.y)
        candidate = self._candidate(names.STACK_ENSEMBLE, records, None, output, time.monotonic() - start)
        model = dict(members=[members[r.candidate.index] for r in records], weights=None, stacker=meta, kind="stack")
        return candidate, model

    def _meta_learner(self, features: np.ndarray):
        """Azure's meta-learners (LogisticRegressionCV / ElasticNetCV), scored out of fold on the candidates'
        validation predictions, so the stack's value is no more optimistic than theirs."""
        from sklearn.linear_model import ElasticNetCV, LogisticRegressionCV
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

        if self.settings.task == "classification":
            meta = LogisticRegressionCV(Cs=5, cv=3, max_iter=1000)
            folds = StratifiedKFold(5, shuffle=True, random_state=self.settings.seed)
            output = cross_val_predict(meta, features, self.y, cv=folds, method="predict_proba")
        else:
            meta = ElasticNetCV(l1_ratio=[0.1, 0.5, 0.9, 1.0], cv=3)
            folds = KFold(5, shuffle=True, random_state=self.settings.seed)
            output = cross_val_predict(meta, features, self.y, cv=folds)
        return meta, output

    def _candidate(self, name, records, weights, output, duration) -> Candidate:
        metrics = self.scorer.score(self.y, output)
        params = {
            "ensembled_iterations": str([r.candidate.index for r in records]),
            "ensembled_algorithms": str([r.candidate.estimator for r in records]),
        }
        if weights is not None:
            params["ensemble_weights"] = str([round(w, 4) for w in weights])
        value = metrics[self.settings.primary_metric]
        return Candidate(
            index=-1, estimator=name, engine_estimator=name, params=params, value=value, metrics=metrics,
            duration_s=duration, status="completed" if math.isfinite(value) else "failed", train_rows=len(self.X),
        )

    def _fit_members(self, records: list[_TrialRecord]) -> dict[int, object] | None:
        """Refit each member on all rows, most important first, while the timeout allows; None if fewer than two fit."""
        members = {}
        for record in records:
            index = record.candidate.index
            if index in self.fitted:
                members[index] = self.fitted[index]
                continue
            if self._is_search_best(record):
                members[index] = self.fitted[index] = self.automl
                continue
            # A CV trial fits each fold on (k-1)/k of the rows; a holdout trial on (1 - ratio) of them.
            factor = 1.0 / max(self.folds - 1, 1) if self.folds > 1 else 1.0 / (1.0 - self.split_ratio)
            if time.monotonic() + record.trial_time_s * factor > self.deadline:
                self.notes.append(f"ensemble: left out candidate {index} ({record.candidate.estimator}): no time to refit it")
                continue
            members[index] = self.fitted[index] = self._refit(record)
        return members if len(members) >= 2 else None

    def _is_search_best(self, record: _TrialRecord) -> bool:
        best_config = {k: _plain(v) for k, v in (self.automl.best_config or {}).items() if k != "FLAML_sample_size"}
        return record.candidate.engine_estimator == self.automl.best_estimator and record.config == best_config

    def _refit(self, record: _TrialRecord):
        from flaml import AutoML

        member = AutoML()
        # max_iter=1: FLAML trains the starting point on all rows without evaluating it.
        member.fit(
            self.X, self.y_fit, task=self.settings.task, estimator_list=[record.candidate.engine_estimator],
            starting_points={record.candidate.engine_estimator: dict(record.config)}, max_iter=1,
            eval_method="holdout", retrain_full=True, n_jobs=_trial_threads(), seed=self.settings.seed, verbose=0,
            skip_transform=self.settings.featurization == "off", custom_hp=self.custom_hp,
        )
        return member
