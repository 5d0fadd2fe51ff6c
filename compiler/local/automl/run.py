"""Backend, local AutoML: one job from start to end (data checks, search, ensembles, the best model)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from capc.errors import CapcError
from capc.local.automl import names
from capc.local.automl.ensembles import build_ensembles
from capc.local.automl.model import AutoMLModel, with_ensemble
from capc.local.automl.results import AutoMLResult, Candidate
from capc.local.automl.search import run_search, trial_threads
from capc.local.automl.settings import AutoMLSettings, resolve_estimators
from capc.local.automl.training_data import training_data


def run_automl(frame: pd.DataFrame, settings: AutoMLSettings, on_candidate: Callable[[Candidate], None] | None = None,
               log_dir: Path | None = None) -> AutoMLResult:
    """Search for the best model of `settings.task` on `frame` (features and target), as the Azure job would."""
    started = time.monotonic()
    notes: list[str] = []
    data = training_data(frame, settings, notes)
    estimators, skipped = _runnable_estimators(settings, notes)
    search = run_search(settings, data, estimators, on_candidate, log_dir, notes, started)

    candidates = search.candidates
    single = AutoMLModel(task=settings.task, feature_columns=[str(c) for c in data.X.columns],
                         numeric_columns=data.numeric_columns, members=[search.automl], weights=[1.0],
                         classes=data.classes, kind="single")
    best, model, models = search.best, single, {search.best.index: single}
    deadline = started + settings.timeout_minutes * 60
    for candidate, ensemble in build_ensembles(settings, search, data, deadline, notes):
        candidate = replace(candidate, index=len(candidates))
        candidates.append(candidate)
        models[candidate.index] = with_ensemble(single, ensemble)
        if on_candidate is not None:
            on_candidate(candidate)
        if settings.goal.better(candidate.value, best.value):
            best, model = candidate, models[candidate.index]

    notes.append(f"took {time.monotonic() - started:.0f}s of a {settings.timeout_minutes * 60:.0f}s budget")
    return AutoMLResult(settings, best, candidates, model, skipped, list(dict.fromkeys(notes)), models,
                        data.feature_sample())


def _runnable_estimators(settings: AutoMLSettings, notes: list[str]) -> tuple[list[str], list[str]]:
    """(FLAML estimators to search, Azure algorithms skipped); a CapcError when nothing the job allows can run."""
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
                     f"each on {trial_threads()} thread(s)")
    return estimators, skipped
