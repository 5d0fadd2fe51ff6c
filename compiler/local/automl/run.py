"""Backend, local AutoML: one job from start to end (data checks, search, ensembles, the best model)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from capc.errors import CapcError
from capc.local.automl import names
from capc.local.automl.ensembles import build_ensembles
from capc.local.automl.model import AutoMLModel, with_ensemble
from capc.local.automl.results import AutoMLResult, Candidate
from capc.local.automl.search import Search, run_search, split_seed, validate_again
from capc.local.automl.settings import AutoMLSettings, azure_algorithm, resolve_estimators
from capc.local.automl.training_data import TrainingData, training_data
from capc.state.held_out import HeldOutPredictions, plain


def run_automl(frame: pd.DataFrame, settings: AutoMLSettings, on_candidate: Callable[[Candidate], None] | None = None,
               log_dir: Path | None = None, validation: pd.DataFrame | None = None,
               warm_start: dict | None = None) -> AutoMLResult:
    """Search for the best model of `settings.task` on `frame` (features and target), as the Azure job would;
    `validation`: a table of its own that every candidate is judged on (Azure's validation_data); `warm_start`:
    FLAML estimator -> the configuration its search starts from (a resumed job's best so far)."""
    if settings.task == "forecasting":  # its own search: rolling-origin folds over capc.forecasting's learners
        from capc.local.automl.forecast_search import run_forecasting

        return run_forecasting(frame, settings, on_candidate, validation)
    started = time.monotonic()
    notes: list[str] = []
    data = training_data(frame, settings, notes, validation)
    estimators, skipped = _runnable_estimators(settings, len(data.X), notes)
    warm = {e: c for e, c in (warm_start or {}).items() if e in estimators} or None
    search = run_search(settings, data, estimators, on_candidate, log_dir, notes, started, warm)
    skipped.update(_untried_algorithms(settings, estimators, search))

    candidates = search.candidates
    single = AutoMLModel(task=settings.task, feature_columns=[str(c) for c in data.X.columns],
                         numeric_columns=data.numeric_columns, members=[search.automl], weights=[1.0],
                         classes=data.classes, kind="single")
    best, model, models = search.best, single, {search.best.index: single}
    # candidate index -> (labels, predictions) on the rows it was validated on, none of which it trained on
    validated = {}
    if search.listener.best_held_out is not None:
        index, labels, output = search.listener.best_held_out
        validated[index] = (labels, output)
    # Reproducible mode: ensemble members are never left out for want of time (which would depend on timing).
    deadline = float("inf") if settings.reproducible else started + settings.timeout_minutes * 60
    ensembles, learner_bests = build_ensembles(settings, search, data, deadline, notes)
    for index, member in learner_bests.items():  # each learner's best, alone: a cheaper model to serve
        models.setdefault(index, with_ensemble(single, dict(members=[member], weights=[1.0], stacker=None, kind="single")))
    for candidate, ensemble, output in ensembles:
        candidate = replace(candidate, index=len(candidates))
        candidates.append(candidate)
        models[candidate.index] = with_ensemble(single, ensemble)
        validated[candidate.index] = (search.listener.validation_y, output)
        if on_candidate is not None:
            on_candidate(candidate)
        if settings.goal.better(candidate.value, best.value):
            best, model = candidate, models[candidate.index]

    notes.append(f"took {time.monotonic() - started:.0f}s of a {settings.timeout_minutes * 60:.0f}s budget")
    recomputed = best.index not in validated
    if recomputed:  # rare: FLAML's best is not the trial the listener kept as best (a tie across learners)
        again = validate_again(settings, search, data)
        if again is None:
            notes.append("the best model's validation predictions could not be computed again; the report shows none")
        else:
            validated[best.index] = again
            notes.append("the best model's validation predictions were computed again after the search "
                         "(same folds and seed, outside the time budget)")
    held_out = _held_out(settings, search, data, *validated[best.index], recomputed) if best.index in validated else None
    return AutoMLResult(settings, best, candidates, model, list(skipped), list(dict.fromkeys(notes)), models,
                        data.feature_sample(), held_out, end=search.end, skipped=skipped)


def _held_out(settings: AutoMLSettings, search: Search, data: TrainingData, labels: np.ndarray, output: np.ndarray,
              recomputed: bool) -> HeldOutPredictions:
    """The best candidate's predictions on its validation rows (out of fold under cross-validation), labels as
    the data spells them, in the form `capc report` reads (capc.state.held_out)."""
    cross_validation = search.plan.get("eval_method") == "cv"
    split = "cross_validation" if cross_validation else "validation_data" if data.X_val is not None else "holdout"
    common = dict(
        task=settings.task, split=split,
        folds=search.listener.folds if cross_validation else None,
        fraction=None if cross_validation else search.plan.get("split_ratio"),
        seed=split_seed(), training_rows=len(data.X), recomputed=recomputed,
    )
    if data.classes is None:
        return HeldOutPredictions(**common, y_true=plain(labels), y_pred=plain(output), y_range=data.y_range)
    probabilities = np.asarray(output, dtype=float)
    return HeldOutPredictions(
        **common, y_true=plain(data.classes[labels]), y_pred=plain(data.classes[np.argmax(probabilities, axis=1)]),
        classes=plain(data.classes), probabilities=probabilities.tolist(),
    )


def _runnable_estimators(settings: AutoMLSettings, rows: int, notes: list[str]) -> tuple[list[str], dict[str, str]]:
    """(FLAML estimators to search, Azure algorithms skipped -> why); a CapcError when nothing the job allows can run."""
    estimators, skipped_names = resolve_estimators(settings)
    skipped = {name: "the local engine has no learner for it (Azure would train it)" for name in skipped_names}
    for estimator in list(estimators):
        limit, why = names.ROW_LIMITS.get(estimator, (rows, ""))
        if rows > limit:
            estimators.remove(estimator)
            algorithm = azure_algorithm(settings.task, estimator)
            if not any(azure_algorithm(settings.task, e) == algorithm for e in estimators):
                skipped[algorithm] = (f"the local engine runs it on at most {limit:,} training rows ({why}); "
                                      f"this job has {rows:,}")
    notes.extend(f"skipped {name}: {why}" for name, why in skipped.items())
    if not estimators:
        raise CapcError(
            f"none of the algorithms this job allows can run locally ({', '.join(skipped) or 'all blocked'}).",
            "allow at least one of " + ", ".join(a for a, e in names.ALGORITHM_ESTIMATORS[settings.task].items() if e),
        )
    if settings.max_concurrent_trials > 1:
        notes.append(f"max_concurrent_trials {settings.max_concurrent_trials}: trials run one at a time here, "
                     f"each on {settings.threads} thread(s)")
    return estimators, skipped


def _untried_algorithms(settings: AutoMLSettings, estimators: list[str], search: Search) -> dict[str, str]:
    """Allowed algorithms with a local learner that the search ended before trying (FLAML spreads its budget by
    expected gain, so a cheap-to-beat learner may never get a trial), with the limit that ended it."""
    tried = {c.engine_estimator for c in search.candidates}
    untried = {}
    for estimator in estimators:
        algorithm = azure_algorithm(settings.task, estimator)
        learners = [e for e in estimators if azure_algorithm(settings.task, e) == algorithm]
        if algorithm not in untried and not tried.intersection(learners):
            ended = f" ({search.end.limit}: {search.end.detail})" if search.end else ""
            untried[algorithm] = f"no trial: the search ended{ended} before FLAML tried it"
    return untried
