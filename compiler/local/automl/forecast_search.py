"""Backend, local AutoML for `task: forecasting`: the search, from the job's settings to the chosen forecaster.

Each candidate is one configuration of a capc.forecasting learner (LightGBM, XGBoost, the scikit-learn regressors of
Azure's list over lag and rolling features; the naive and seasonal-naive baselines), scored by rolling-origin validation (capc.forecasting
.backtest: n_cross_validations folds, each training on the rows up to its origin and forecasting the horizon after
it, never shuffled) on every Azure forecasting metric over all folds' forecasts, the normalized ones divided by the
range of the whole training target. The search tries the baselines and each learner's default first, then random
configurations of the allowed learners in turn, until timeout_minutes (a candidate is not started when the time
left is shorter than the last one took), max_trials, exit_score, or (enable_early_termination) 20 candidates
without a gain, Azure's rule. The best is refitted on every row, its backtest residuals giving its quantiles.

What is not done here is said in the result's notes: ensembles (each candidate is one forecaster),
feature_lags, use_stl and holidays, and the time-series models of Azure's list (skipped with a reason).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from capc import azure_metrics, forecasting
from capc.errors import CapcError
from capc.forecasting import SERIES_KEY, ForecastDataError
from capc.local.automl.forecast_model import ForecastModel, save_forecast_model
from capc.local.automl.results import AutoMLResult, Candidate
from capc.local.automl import names
from capc.local.automl.settings import AutoMLSettings, azure_algorithm
from capc.local.search_end import SearchEnd
from capc.state.held_out import HeldOutPredictions, plain
from capc.state.tracking import COMPLETED, FAILED

NO_GAIN_LIMIT = 20  # Azure's early termination: no better candidate in this many
BASELINES = ("seasonal_naive", "naive")
# The order learners get their first candidate in: the baselines (every search's yardstick), then the learners that are
# strong and quick on the reference data's rolling-origin folds (macro_train.csv, 3 folds), slow or weak ones last.
LEARNER_ORDER = ("seasonal_naive", "naive", "lightgbm", "elasticnet", "extratrees", "xgboost", "lassolars", "randomforest",
                 "gradientboosting", "knn", "sgd", "decisiontree")


@dataclass(frozen=True)
class Configuration:
    learner: str  # capc.forecasting's learner, or `naive` (seasonal naive with a season of 1)
    params: dict


def sampled_params(learner: str, rng: random.Random) -> dict:
    """A random configuration of a learner, from ranges that suit a few hundred to a few hundred thousand rows."""
    if learner == "lightgbm":
        return dict(n_estimators=rng.choice([100, 200, 300, 500, 800]), learning_rate=round(10 ** rng.uniform(-2, -0.7), 4),
                    num_leaves=rng.choice([4, 7, 15, 31, 63]), min_child_samples=rng.choice([5, 10, 20, 40]),
                    subsample=round(rng.uniform(0.6, 1.0), 2), colsample_bytree=round(rng.uniform(0.5, 1.0), 2),
                    reg_lambda=round(10 ** rng.uniform(-3, 1), 4), objective=rng.choice(["regression", "regression_l1", "huber"]))
    if learner == "extratrees":
        return dict(n_estimators=rng.choice([100, 200, 400]), min_samples_leaf=rng.choice([1, 2, 3, 5, 10]),
                    max_features=round(rng.uniform(0.3, 1.0), 2))
    if learner == "randomforest":
        return dict(n_estimators=rng.choice([100, 200]), min_samples_leaf=rng.choice([1, 3, 5, 10]),
                    max_features=round(rng.uniform(0.3, 1.0), 2))
    if learner == "xgboost":
        return dict(n_estimators=rng.choice([100, 300, 600]), learning_rate=round(10 ** rng.uniform(-2, -0.7), 4),
                    max_depth=rng.choice([2, 3, 4, 6, 8]), subsample=round(rng.uniform(0.6, 1.0), 2),
                    colsample_bytree=round(rng.uniform(0.5, 1.0), 2), reg_lambda=round(10 ** rng.uniform(-3, 1), 4))
    if learner == "gradientboosting":
        return dict(n_estimators=rng.choice([50, 100, 200]), max_depth=rng.choice([2, 3, 4, 5]),
                    learning_rate=round(10 ** rng.uniform(-2, -0.5), 4), subsample=round(rng.uniform(0.6, 1.0), 2))
    if learner in ("elasticnet", "lassolars", "sgd"):
        alpha = round(10 ** rng.uniform(-4, 0), 5)
        return dict(alpha=alpha, l1_ratio=round(rng.uniform(0.0, 1.0), 2)) if learner == "elasticnet" else dict(alpha=alpha)
    if learner == "knn":
        return dict(n_neighbors=rng.choice([3, 5, 10, 20, 40]), weights=rng.choice(["uniform", "distance"]))
    if learner == "decisiontree":
        return dict(min_samples_leaf=rng.choice([1, 3, 5, 10, 20]), max_depth=rng.choice([None, 4, 8, 12]))
    return {}


def schedule(learners: list[str], primary_metric: str, seed: int):
    """Configurations in the order they are tried: the baselines, each learner's default (LightGBM also on the
    absolute loss when the job is judged by it), then random configurations of the learners in turn, forever."""
    for learner in learners:
        if learner in BASELINES:
            yield Configuration(learner, {})
    models = [learner for learner in learners if learner not in BASELINES]
    for learner in models:
        yield Configuration(learner, {})
    if "lightgbm" in models and primary_metric == "normalized_mean_absolute_error":
        yield Configuration("lightgbm", {"objective": "regression_l1"})
    rng = random.Random(seed)
    while models:
        for learner in models:
            yield Configuration(learner, sampled_params(learner, rng))


def forecast_settings(settings: AutoMLSettings, notes: list[str]) -> forecasting.Settings:
    """The job's forecasting: block as capc.forecasting.Settings; CapcError for what Azure would refuse too."""
    block = settings.forecasting or {}
    folds = settings.forecast_folds
    if settings.validation_data_size is not None:
        notes.append("validation_data_size is not used for forecasting: candidates are validated on rolling-origin folds")
    try:
        result = forecasting.Settings.from_azure(block, target=settings.target_column, n_folds=folds)
    except ForecastDataError as exc:
        raise CapcError(f"automl_job.yml: forecasting: {exc}.") from None
    for key, why in {
        "feature_lags": "lags of the other features are not built (the target's lags and rolling windows are)",
        "use_stl": "no STL decomposition; the season enters as lag and seasonal-naive features",
        "country_or_region_for_holidays": "no holiday features",
    }.items():
        value = block.get(key)
        if value not in (None, "none", "None", False, [], ""):
            notes.append(f"forecasting.{key} is not honoured locally: {why}")
    defaults = [key for key in ("target_lags", "target_rolling_window_size") if key not in block]
    if defaults:
        notes.append(f"{' and '.join(defaults)} left out: the local engine chooses them (auto) from the season; "
                     "Azure leaves them out of its features")
    if result.short_series == "pad":
        notes.append("forecasting.short_series_handling_config pad is run as auto: a series too short for a fold is "
                     "left out of that fold's validation, not padded")
    return result


def prepared_history(frame: pd.DataFrame, settings: AutoMLSettings, fsettings: forecasting.Settings,
                     validation: pd.DataFrame | None, notes: list[str]) -> pd.DataFrame:
    """The training rows read as series (validation_data appended: the folds roll through it), unknown features dropped."""
    unknown = [str(c) for c in (settings.forecasting or {}).get("features_unknown_at_forecast_time") or []]
    if unknown:
        notes.append(f"features_unknown_at_forecast_time {', '.join(unknown)}: left out of the features (the local "
                     "forecaster uses known features at the forecast time only)")
    if validation is not None:
        notes.append("validation_data: appended to the training rows; forecasting is validated on rolling-origin folds "
                     "that roll through it")
        frame = pd.concat([frame, validation], ignore_index=True)
    frame = frame.drop(columns=[c for c in unknown if c in frame.columns])
    try:
        history = forecasting.read_series(frame, fsettings)
        forecasting.rolling_origin_folds(history, fsettings)  # too short for the folds: said before any candidate
    except ForecastDataError as exc:
        raise CapcError(f"the forecasting training data: {exc}.") from None
    return history


def _learner_settings(fsettings: forecasting.Settings, learner: str) -> tuple[forecasting.Settings, str]:
    """`naive` is capc.forecasting's seasonal naive with a season of one step."""
    if learner == "naive":
        return replace(fsettings, seasonality=1), "seasonal_naive"
    return fsettings, learner


def _params(configuration: Configuration, threads: int, seed: int) -> dict:
    learner, params = configuration.learner, dict(configuration.params)
    if learner in ("lightgbm", "xgboost", "extratrees", "randomforest"):
        params.setdefault("n_jobs", threads)
    if learner not in ("naive", "seasonal_naive", "elasticnet", "lassolars", "knn"):
        params.setdefault("random_state", seed)
    return params


@dataclass
class Evaluated:
    candidate: Candidate
    configuration: Configuration
    validated: pd.DataFrame | None  # its backtest rows


def evaluate(history, fsettings, settings: AutoMLSettings, configuration: Configuration, index: int, y_range: float) -> Evaluated:
    started = time.monotonic()
    learner_settings, learner = _learner_settings(fsettings, configuration.learner)
    algorithm = azure_algorithm("forecasting", configuration.learner)
    try:
        validated = forecasting.backtest(history, learner_settings, learner, _params(configuration, settings.threads, settings.seed))
    except Exception as exc:  # noqa: BLE001 - a learner that fails is a failed candidate (as on Azure), not a failed job
        params = {**configuration.params, "error": f"{type(exc).__name__}: {exc}"[:300]}  # shown with its child run
        failed = Candidate(index, algorithm, configuration.learner, params, math.nan, {}, time.monotonic() - started, FAILED,
                           len(history))
        return Evaluated(failed, configuration, None)
    metrics = azure_metrics.forecasting_scores(validated["actual"], validated["forecast"], y_range)
    value = metrics[settings.primary_metric]
    status = COMPLETED if np.isfinite(value) else FAILED
    candidate = Candidate(index, algorithm, configuration.learner, dict(configuration.params), float(value), metrics,
                          time.monotonic() - started, status, len(history))
    return Evaluated(candidate, configuration, validated)


def run_forecasting(frame: pd.DataFrame, settings: AutoMLSettings, on_candidate: Callable[[Candidate], None] | None = None,
                    validation: pd.DataFrame | None = None) -> ForecastingResult:
    """Search for the best forecaster of `frame` under the job's settings (see the module)."""
    started = time.monotonic()
    notes: list[str] = []
    fsettings = forecast_settings(settings, notes)
    history = prepared_history(frame, settings, fsettings, validation, notes)
    y_range = azure_metrics.target_range(history[fsettings.target])
    learners, skipped = _runnable(settings, notes)
    search = _Search(settings, started)
    for configuration in schedule(learners, settings.primary_metric, settings.seed):
        if search.over():
            break
        evaluated = evaluate(history, fsettings, settings, configuration, len(search.candidates), y_range)
        search.add(evaluated)
        if on_candidate is not None:
            on_candidate(evaluated.candidate)
    if search.best is None:
        raise CapcError("no forecasting candidate completed: " + "; ".join(
            f"{e.candidate.estimator}: {e.candidate.params.get('error', 'no finite score')}" for e in search.candidates[:3]))
    best = search.best
    learner_settings, learner = _learner_settings(fsettings, best.configuration.learner)
    forecaster = forecasting.Forecaster(learner_settings, learner, _params(best.configuration, settings.threads, settings.seed))
    forecaster.fit(history, validation=best.validated)
    model = ForecastModel(forecaster)
    notes.append(f"{fsettings.n_folds} rolling-origin folds of {fsettings.horizon} steps (frequency {history.attrs['frequency']}, "
                 f"season {forecaster.shape_.season}, lags {list(forecaster.shape_.lags)}, rolling window {forecaster.shape_.window})")
    if settings.enable_vote_ensemble or settings.enable_stack_ensemble:
        notes.append("enable_vote_ensemble / enable_stack_ensemble: no ensembles are built for forecasting locally; "
                     "each candidate is one forecaster")
    notes.append(f"took {time.monotonic() - started:.0f}s of a {settings.timeout_minutes * 60:.0f}s budget")
    candidates = [e.candidate for e in search.candidates]
    return ForecastingResult(settings, best.candidate, candidates, model, list(skipped), list(dict.fromkeys(notes)),
                             {best.candidate.index: model}, frame.head(5), _held_out(fsettings, best.validated, history, y_range),
                             end=search.end, skipped=skipped)


class _Search:
    """The candidates so far, the best, and the limit that ends the search."""

    def __init__(self, settings: AutoMLSettings, started: float):
        self.settings, self.started = settings, started
        self.candidates: list[Evaluated] = []
        self.best: Evaluated | None = None
        self.since_gain = 0
        self.end: SearchEnd | None = None

    def add(self, evaluated: Evaluated) -> None:
        self.candidates.append(evaluated)
        candidate = evaluated.candidate
        if candidate.status == COMPLETED and (self.best is None or self.settings.goal.better(candidate.value, self.best.candidate.value)):
            self.best, self.since_gain = evaluated, 0
        else:
            self.since_gain += 1

    def over(self) -> bool:
        settings, done = self.settings, len(self.candidates)
        if done >= settings.max_trials:
            self.end = SearchEnd("trials", f"max_trials {settings.max_trials} reached")
        elif self.best is not None and settings.exit_score is not None and not settings.goal.better(settings.exit_score, self.best.candidate.value):
            self.end = SearchEnd("exit_score", f"exit_score {settings.exit_score:g} reached ({self.best.candidate.value:.4g})")
        elif settings.enable_early_termination and self.since_gain >= NO_GAIN_LIMIT:
            self.end = SearchEnd("early_termination", f"no better candidate in the last {NO_GAIN_LIMIT} (enable_early_termination)")
        elif not settings.reproducible and done and self._time_left() < self.candidates[-1].candidate.duration_s:
            self.end = SearchEnd("time", f"timeout_minutes {settings.timeout_minutes:g} reached (a further candidate would not fit)")
        return self.end is not None

    def _time_left(self) -> float:
        return self.settings.timeout_minutes * 60 - (time.monotonic() - self.started)


def _runnable(settings: AutoMLSettings, notes: list[str]) -> tuple[list[str], dict[str, str]]:
    table = names.ALGORITHM_ESTIMATORS["forecasting"]
    chosen = [a for a in (settings.allowed_algorithms or tuple(table)) if a not in settings.blocked_algorithms]
    wanted = {learner for a in chosen for learner in (table[a] or ())}
    learners = [learner for learner in LEARNER_ORDER if learner in wanted]
    skipped = {a: "the local engine has no learner for it (Azure would train it)" for a in chosen if table[a] is None}
    notes.extend(f"skipped {name}: {why}" for name, why in skipped.items())
    if not learners:
        raise CapcError(f"none of the forecasting algorithms this job allows can run locally ({', '.join(skipped) or 'all blocked'}).",
                        "allow at least one of LightGBM, ExtremeRandomTrees, ElasticNet, SeasonalNaive, Naive")
    return learners, skipped


def _held_out(fsettings: forecasting.Settings, validated: pd.DataFrame, history: pd.DataFrame, y_range: float) -> HeldOutPredictions:
    """The best candidate's rolling-origin forecasts, with each row's series, time, horizon step and fold."""
    series = validated[SERIES_KEY].astype(str)
    return HeldOutPredictions(
        task="forecasting", split="cross_validation", folds=fsettings.n_folds, fraction=None, seed=None,
        training_rows=len(history), y_true=plain(validated["actual"]), y_pred=plain(validated["forecast"]), y_range=y_range,
        times=[t.isoformat() for t in pd.DatetimeIndex(validated[fsettings.time_column])], series=series.tolist(),
        steps=plain(validated["step"]), fold_index=plain(validated["fold"]), baseline=plain(validated["seasonal_naive"]),
    )


class ForecastingResult(AutoMLResult):
    """An AutoMLResult whose model is a ForecastModel (saved as a pyfunc model, not the sklearn flavour)."""

    def save_mlflow_model(self, path):
        return save_forecast_model(self.model, path)
