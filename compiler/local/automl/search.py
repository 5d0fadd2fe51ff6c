"""Backend, local AutoML: the FLAML search, under the job's limits, each finished trial reported as a Candidate.

FLAML 2.7 has no public per-trial callback and no public way to end a search early, so this module, and only
this one, reaches into FLAML's private parts: `AutoML._log_trial` (where it records every trial) is hooked to
see each trial, and `AutoML._state.time_budget` is zeroed to stop the search (see `_searching_automl_class`);
`AutoML._transformer` tells which columns featurization dropped. A FLAML upgrade is checked here first.

The listener keeps the best trial's predictions on its validation rows (out of fold under cross-validation),
whatever its training sample: the model is refitted on every row, so these are what it can be judged by
(AutoMLResult.held_out). When FLAML's best is not the trial kept (a tie across learners), `validate_again`
evaluates its configuration once more on the same folds after the search, outside the time budget.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from capc.errors import CapcError
from capc.goal import Goal
from capc.local.automl import names
from capc.local.automl.results import Candidate
from capc.local.automl.settings import AutoMLSettings, azure_algorithm
from capc.local.automl.training_data import TrainingData
from capc.local.search_end import SearchEnd
from capc.state.tracking import COMPLETED, FAILED

# Share of the timeout the search gets when ensembles are on; the rest refits ensemble members.
SEARCH_SHARE_WITH_ENSEMBLES = 0.8
ENSEMBLE_LIBRARY_SIZE = 15  # best candidates the ensembles' selection draws from
# Where each learner's search starts: FLAML's zero-shot configurations for the data (see the package docstring)...
STARTING_POINTS = "data"
# ...unless the budget cannot train one to its end. They are big models meant to be trained fully (for 1 M bank
# rows a LightGBM of 2,541 trees at learning rate 0.0017); FLAML cuts a trial off at the time limit, and a cut-off
# one is a broken model: with 5-fold CV and a 2-minute budget, that LightGBM took 105 s and predicted the
# majority class only (0.888), where the cold start (small models, growing) ran 14 trials to 0.919 and a vote of
# 0.923. At 260 k rows one zero-shot trial took 106 of the 120 s, leaving no search. So the warm start needs the
# rows fitted per trial (rows x folds) to stay under this many per minute of the AutoML timeout.
ZERO_SHOT_ROW_FITS_PER_MINUTE = 500_000
# Reproducible mode (capc.local.reproducible): with no time budget FLAML counts trials where it would weigh
# time (which learner next: its ECI), but it still grows a trial's sample by the time trials took; on all rows
# the search depends on the seed and the data alone.
REPRODUCIBLE_FIT = {"sample": False}


@dataclass
class Search:
    """A finished search: the fitted flaml.AutoML (its best model refitted on all rows) and every trial."""

    automl: object
    listener: TrialListener
    scorer: TrialScorer
    custom_hp: dict | None  # the training objectives searched, which ensemble refits search the same way
    best: Candidate  # the candidate `automl` is the refit of
    plan: dict  # FLAML's validation arguments (eval_method, n_splits or split_ratio)
    end: SearchEnd | None = None  # the limit that ended the search

    @property
    def candidates(self) -> list[Candidate]:
        return [r.candidate for r in self.listener.records]


def run_search(settings: AutoMLSettings, data: TrainingData, estimators: list[str],
               on_candidate: Callable[[Candidate], None] | None, log_dir: Path | None, notes: list[str],
               started: float, warm_start: dict | None = None) -> Search:
    """FLAML's search over `estimators` within the job's limits; notes say how validation ran and why it stopped."""
    plan, folds, plan_text = _validation_plan(settings, len(data.X), data)
    notes.append(f"validation: {plan_text}")
    starting_points = warm_start or _starting_points(settings, len(data.X), folds, notes)
    if warm_start:
        notes.append(f"search starts from the best configuration of {', '.join(sorted(warm_start))} so far (FLAML's warm start)")
    scorer = TrialScorer(settings.task, settings.primary_metric, data.n_classes, data.y_range)
    listener = TrialListener(settings, scorer, folds, on_candidate)
    ensembles = settings.enable_vote_ensemble or settings.enable_stack_ensemble
    search_budget = settings.timeout_minutes * 60 * (SEARCH_SHARE_WITH_ENSEMBLES if ensembles else 1.0)
    search_budget = -1 if settings.reproducible else search_budget  # FLAML's "no time budget": max_trials ends it
    custom_hp = _objective_choices(settings.primary_metric, estimators)
    log_file = ""
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        log_file = str(Path(log_dir) / "flaml_trials.jsonl")
    automl = new_automl(searching=True)
    automl.capc_listener = listener
    # The refit may take half of what the search leaves; the ensembles get the other half.
    refit_deadline = started + search_budget + (settings.timeout_minutes * 60 - search_budget) / 2
    automl.capc_refit_bound = None if settings.reproducible else partial(_bounded_refit, deadline=refit_deadline, folds=folds)
    try:
        with quiet_learners(settings.threads):
            automl.fit(
                data.X, data.y_fit,
                task=settings.task,
                metric=scorer,
                estimator_list=list(estimators),  # FLAML reorders it in place (zero-shot puts the suggested learner first)
                starting_points=starting_points,
                time_budget=search_budget,
                # FLAML does not score a lone trial; max_trials 1 is enforced by the listener instead.
                max_iter=max(2, settings.max_trials),
                train_time_limit=settings.trial_timeout_minutes * 60 if settings.trial_timeout_minutes else None,
                early_stop=settings.enable_early_termination,
                log_type="all",
                log_file_name=log_file,
                n_jobs=settings.threads,
                seed=settings.seed,
                verbose=0,
                skip_transform=settings.featurization == "off",
                retrain_full=True,
                # FLAML copies the rows of classes under 20 rows until they reach 20; a copy can then sit in a
                # training fold and a validation fold at once, so validation would count rows the model trained
                # on. Azure copies none.
                auto_augment=False,
                custom_hp=custom_hp,
                **plan,
                **(REPRODUCIBLE_FIT if settings.reproducible else {}),
            )
    finally:
        automl.capc_listener = None  # the fitted object is pickled into the model; it must not hold the run
        automl.capc_refit_bound = None
    budget_text = f"no time budget, max_trials {settings.max_trials}" if settings.reproducible else f"search budget {search_budget:.0f}s"
    notes.append(f"search: {len(listener.records)} trials in {time.monotonic() - started:.0f}s "
                 f"({budget_text}, best model refitted on all rows)")
    end = _search_end(settings, listener, time.monotonic() - started, search_budget)
    candidates = [r.candidate for r in listener.records]
    if not any(c.status == COMPLETED for c in candidates) or automl.best_estimator is None:
        raise CapcError(
            f"AutoML finished no candidate within {settings.timeout_minutes:g} minutes "
            f"({len(candidates)} tried); raise automl.timeout_minutes or trial_timeout_minutes.",
        )
    notes.extend(_featurization_notes(automl, data.X))
    return Search(automl, listener, scorer, custom_hp, _flaml_best(listener, automl, settings.goal), plan, end)


def _search_end(settings: AutoMLSettings, listener: TrialListener, elapsed_s: float, search_budget: float) -> SearchEnd:
    """The limit that ended FLAML's search: the listener's (exit_score, max_trials), else FLAML's convergence test
    when it ended well before its budget, else the time budget."""
    if listener.stop_reason:
        return listener.stop_reason
    if settings.reproducible:  # no time budget: FLAML ran its max_trials
        return SearchEnd("trials", f"max_trials {settings.max_trials}: reproducible mode counts trials, not time "
                         f"({len(listener.records)} trials)")
    if settings.enable_early_termination and elapsed_s < 0.9 * search_budget:
        return SearchEnd("early_termination", f"FLAML judged the search converged after {len(listener.records)} "
                         f"trials and {elapsed_s:.0f} s of its {search_budget:.0f} s (enable_early_termination)")
    share = "" if search_budget >= settings.timeout_minutes * 60 else " (the rest of timeout_minutes builds the ensembles)"
    return SearchEnd("time", f"timeout_minutes {settings.timeout_minutes:g}: the search used its {search_budget:.0f} s "
                     f"after {len(listener.records)} trials{share}")


class TrialScorer:
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
        self.higher_is_better = Goal.of(task, primary).maximize
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
        """Every metric (or `only` one) of `output`: probabilities (classification; the class predicted is the
        likeliest) or predictions (regression), against `y` (class codes or values)."""
        metrics = {}
        predicted = np.argmax(output, axis=1) if self.task == "classification" else None
        for name, scorer in self.scorers.items():
            if only is not None and name != only:
                continue
            try:
                if self.task == "classification":
                    value = scorer(y, predicted, output, self.n_classes)
                else:
                    value = scorer(y, output, self.y_range)
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
class TrialRecord:
    candidate: Candidate
    output: np.ndarray | None  # validation predictions, in the order of the shared validation rows
    config: dict
    trial_time_s: float


class TrialListener:
    """Turns each finished FLAML trial into a Candidate, reports it, and says when the search must stop."""

    def __init__(self, settings: AutoMLSettings, scorer: TrialScorer, folds: int,
                 on_candidate: Callable[[Candidate], None] | None):
        self.settings = settings
        self.scorer = scorer
        self.folds = folds
        self.on_candidate = on_candidate
        self.records: list[TrialRecord] = []
        self.validation_rows: np.ndarray | None = None
        self.validation_y: np.ndarray | None = None
        self.stop_reason: SearchEnd | None = None
        # (candidate index, labels, predictions) on the validation rows of the best trial so far, whatever its
        # training sample size: what the report judges the winner by.
        self.best_held_out: tuple[int, np.ndarray, np.ndarray] | None = None

    def trial_finished(self, search_state, estimator: str, full_rows: int) -> bool:
        pending, self.scorer.pending = self.scorer.pending, []
        logged = dict(search_state.metric_for_logging or {})
        logged.pop("pred_time", None)
        metrics = {k: float(v) for k, v in logged.items() if k in self.scorer.scorers}
        value = metrics.get(self.settings.primary_metric, float("nan"))
        config = {k: plain(v) for k, v in (search_state.config or {}).items() if k != "FLAML_sample_size"}
        rows = int(search_state.sample_size or full_rows)
        candidate = Candidate(
            index=len(self.records),
            estimator=azure_algorithm(self.settings.task, estimator),
            engine_estimator=estimator,
            params=config,
            value=value,
            metrics=metrics,
            duration_s=float(search_state.trial_time or 0.0),
            status=COMPLETED if math.isfinite(value) else FAILED,
            train_rows=rows,
        )
        output = self._validation_output(pending) if rows == full_rows and candidate.status == COMPLETED else None
        self._keep_if_best(candidate, pending)
        self.records.append(TrialRecord(candidate, output, config, candidate.duration_s))
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

    def _keep_if_best(self, candidate: Candidate, pending) -> None:
        if candidate.status != COMPLETED or len(pending) != self.folds or any(p is None for p in pending):
            return
        if self.best_held_out is not None and not self.settings.goal.better(
            candidate.value, self.records[self.best_held_out[0]].candidate.value
        ):
            return
        self.best_held_out = (candidate.index, np.concatenate([p[1] for p in pending]), np.concatenate([p[2] for p in pending]))

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
        if exit_score is not None and candidate.status == COMPLETED:
            if self.settings.goal.reached(candidate.value, exit_score):
                self.stop_reason = SearchEnd("exit_score", f"exit_score {exit_score:g} reached by candidate "
                                             f"{candidate.index} ({candidate.estimator}, {candidate.value:.6g})")
                return True
        if len(self.records) >= self.settings.max_trials:
            self.stop_reason = SearchEnd("trials", f"max_trials {self.settings.max_trials} reached")
            return True
        return False


def plain(value):
    """numpy scalars -> Python ones, so params log and compare cleanly."""
    return value.item() if isinstance(value, np.generic) else value


def ranked_records(records: list[TrialRecord], goal: Goal) -> list[TrialRecord]:
    """Completed trials, best first (ties: the earlier)."""
    done = [r for r in records if r.candidate.status == COMPLETED]
    return goal.ranked(done, lambda r: r.candidate.value, tiebreak=lambda r: r.candidate.index)


def best_per_learner(records: list[TrialRecord], goal: Goal) -> list[TrialRecord]:
    """The best trial of each FLAML learner, best first."""
    seen, out = set(), []
    for record in ranked_records(records, goal):
        if record.candidate.engine_estimator not in seen:
            seen.add(record.candidate.engine_estimator)
            out.append(record)
    return out


def ensemble_library(records: list[TrialRecord], goal: Goal, size: int) -> list[TrialRecord]:
    """What ensembles draw from: the `size` best trials, plus the best of every other learner, since the
    top of the ranking is often one learner's near-identical neighbours and ensembles gain from difference."""
    top = ranked_records(records, goal)[:size]
    return top + [r for r in best_per_learner(records, goal) if r not in top]


def validate_again(settings: AutoMLSettings, search: Search, data: TrainingData) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, predictions) of FLAML's best configuration on the search's own validation rows, evaluated once
    more (FLAML draws its folds and holdout with a fixed seed, so they are the same rows): one search of that
    configuration alone, stopped after its first trial. None when it could not be evaluated."""
    automl = search.automl
    estimator = automl.best_estimator
    config = {k: plain(v) for k, v in (automl.best_config or {}).items() if k != "FLAML_sample_size"}
    listener = TrialListener(replace(settings, max_trials=1, exit_score=None), search.scorer, search.listener.folds, None)
    again = new_automl(searching=True)
    again.capc_listener = listener
    search.scorer.pending = []
    try:
        with quiet_learners(settings.threads):
            again.fit(
                data.X, data.y_fit, task=settings.task, metric=search.scorer, estimator_list=[estimator],
                starting_points={estimator: config}, max_iter=2, sample=False, retrain_full=False, log_type="all",
                auto_augment=False, n_jobs=settings.threads, seed=settings.seed, verbose=0,
                skip_transform=settings.featurization == "off", custom_hp=search.custom_hp, **search.plan,
            )
    finally:
        again.capc_listener = None
    if listener.best_held_out is None:
        return None
    _, labels, output = listener.best_held_out
    return labels, output


def split_seed() -> int:
    """The seed FLAML draws every fold and holdout with (its own constant, not the search's `seed`)."""
    from flaml.config import RANDOM_SEED

    return RANDOM_SEED


# ------------------------------------------------------------------ FLAML's private parts (see the module docstring)


def new_automl(searching: bool = False):
    """A flaml.AutoML with capc's own learners (learners.LEARNERS) added; `searching`: one that reports each
    trial to its `capc_listener`. Every flaml.AutoML capc fits comes from here."""
    from flaml import AutoML

    from capc.local.automl.learners import add_learners

    automl = _searching_automl_class()() if searching else AutoML()
    add_learners(automl)
    return automl


def _searching_automl_class():
    from flaml import AutoML

    class SearchingAutoML(AutoML):
        """flaml.AutoML that tells capc about each trial. FLAML 2.7 has no public per-trial callback;
        `_log_trial` is where it records every trial when log_type="all", so the hook sits there."""

        capc_listener: TrialListener | None = None
        capc_refit_bound: Callable | None = None  # wraps FLAML's _train_with_config for its final refit

        def _search(self):
            # FLAML lifts every time limit for its final refit on all rows (time_budget = -1), so a learner
            # whose trials the budget cut short (the zero-shot LightGBM/XGBoost starts: thousands of trees)
            # trains its whole configuration there: 14+ minutes past a 2-minute budget at a million rows.
            # run_search bounds it (_bounded_refit); set and cleared like capc_listener, since this class is
            # pickled with the model and must not reach capc.
            if self.capc_refit_bound is not None:
                self._state._train_with_config = self.capc_refit_bound(self, self._state._train_with_config)
            try:
                return super()._search()
            finally:
                self._state.__dict__.pop("_train_with_config", None)

        def _log_trial(self, search_state, estimator):
            super()._log_trial(search_state, estimator)
            listener = self.capc_listener
            if listener is not None and listener.trial_finished(search_state, estimator, self._state.data_size[0]):
                # The search loop ends once time_from_start >= time_budget >= 0; FLAML resets the budget for
                # its final refit, so only the search stops.
                self._state.time_budget = 0

    return SearchingAutoML


MIN_REFIT_S = 5.0


def _bounded_refit(automl, train, *, deadline: float, folds: int):
    """FLAML's AutoMLState._train_with_config, with the final refit (is_retrain) given a time budget: the time
    left before `deadline`, at least the time one validation fold of the best trial trained. Only learners
    that stop on a deadline themselves (FLAML's HAS_CALLBACK: LightGBM, XGBoost) get one; FLAML's other
    learners cannot take a budget for a refit."""
    state = automl._state

    def bounded(estimator, config_w_resource, sample_size=None, is_retrain=False):
        learner = state.learner_classes.get(estimator) or state.task.estimator_class_from_str(estimator)
        if is_retrain and state.time_budget < 0 and getattr(learner, "HAS_CALLBACK", False):
            search_state = automl._search_states.get(estimator)
            per_fold = (getattr(search_state, "best_config_train_time", 0) or 0) / folds  # FLAML sums the folds' times
            state.time_from_start = time.time() - automl._start_time_flag
            state.time_budget = state.time_from_start + max(deadline - time.monotonic(), per_fold, MIN_REFIT_S)
        return train(estimator, config_w_resource, sample_size=sample_size, is_retrain=is_retrain)

    return bounded


@contextmanager
def quiet_learners(threads: int):
    """Learners' warnings and FLAML's log lines would garble the caller's live progress display; threads capped."""
    from threadpoolctl import threadpool_limits

    flaml_logger = logging.getLogger("flaml")
    level = flaml_logger.level
    flaml_logger.setLevel(logging.ERROR)
    try:
        # Learners without an n_jobs knob (sklearn's histogram boosting, BLAS) follow OpenMP's default of
        # every core; hold them to the trial's thread count too.
        with warnings.catch_warnings(), threadpool_limits(limits=threads):
            warnings.simplefilter("ignore")
            yield
    finally:
        flaml_logger.setLevel(level)


def _objective_choices(metric: str, estimators: list[str]) -> dict | None:
    """FLAML custom_hp adding the metric's training objectives to the learners that have them."""
    from flaml import tune

    choices = names.TRAINING_OBJECTIVES.get(metric, {})
    space = {
        est: {"objective": {"domain": tune.choice(list(options)), "init_value": options[0]}}
        for est, options in choices.items() if est in estimators
    }
    return space or None


def _validation_plan(settings: AutoMLSettings, rows: int, data: TrainingData | None = None) -> tuple[dict, int, str]:
    """(FLAML fit arguments, folds the metric is called per trial, description)."""
    if data is not None and data.X_val is not None:  # Azure's validation_data: every trial is judged on that table
        return ({"eval_method": "holdout", "X_val": data.X_val, "y_val": data.y_val_fit}, 1,
                f"the validation_data table ({len(data.X_val):,} rows)")
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


def _starting_points(settings: AutoMLSettings, rows: int, folds: int, notes: list[str]) -> str | None:
    """FLAML's zero-shot start, or None (its cold start) when the timeout cannot train a zero-shot model on this
    much data (ZERO_SHOT_ROW_FITS_PER_MINUTE); the notes say which and why."""
    if settings.reproducible:
        # A zero-shot start is a big model whose cost no trial count bounds (a 1,312-leaf XGBoost took 10 minutes
        # on the bank data's 5 folds on one thread); without the clock, start small and grow.
        notes.append("reproducible: the search starts cold (small models, growing), not from FLAML's zero-shot "
                     "configurations; raise automl.max_trials for bigger models")
        return None
    row_fits = rows * max(folds, 1)
    if row_fits <= ZERO_SHOT_ROW_FITS_PER_MINUTE * settings.timeout_minutes:
        return STARTING_POINTS
    notes.append(
        f"search starts cold (small models, growing), not from FLAML's zero-shot configurations: {rows:,} rows x "
        f"{max(folds, 1)} fold(s) per trial is more than {settings.timeout_minutes:g} minute(s) can train them on"
    )
    return None


def _flaml_best(listener: TrialListener, automl, goal: Goal) -> Candidate:
    """The candidate FLAML refitted as its best model (first trial with its best loss and learner)."""
    best_loss = automl.best_loss
    for record in listener.records:
        c = record.candidate
        if c.status == COMPLETED and c.engine_estimator == automl.best_estimator and math.isclose(
            listener.scorer.loss(c.value), best_loss, rel_tol=1e-9, abs_tol=1e-12
        ):
            return c
    return ranked_records(listener.records, goal)[0].candidate


def _featurization_notes(automl, X: pd.DataFrame) -> list[str]:
    """Columns FLAML's featurization (its private `_transformer`) left out of the model."""
    transformer = getattr(automl, "_transformer", None)
    if not transformer:
        return []
    used = set(getattr(transformer, "_cat_columns", [])) | set(getattr(transformer, "_num_columns", []))
    dropped = [str(c) for c in X.columns if c not in used]
    return [f"featurization dropped constant or ID-like columns: {', '.join(dropped)}"] if dropped else []
