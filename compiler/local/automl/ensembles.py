"""Backend, local AutoML: Azure's VotingEnsemble and StackEnsemble, built from the search's candidates.

VotingEnsemble is greedy ensemble selection with replacement (Caruana et al.) over the candidates' validation
predictions; StackEnsemble a logistic / elastic-net meta-learner over them. Each is scored on the same
validation rows as the candidates, and out of fold: an ensemble fitted to those rows and judged on them would
look better than it is (the selection picks whatever suits their noise), and win against candidates whose values
are honest. So the best model is chosen fairly among all of them.
"""

from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np

from capc.local.automl import names
from capc.local.automl.model import stack_features
from capc.local.automl.results import Candidate
from capc.local.automl.search import (
    ENSEMBLE_LIBRARY_SIZE, Search, TrialRecord, best_per_learner, ensemble_library, new_automl, plain, quiet_learners,
)
from capc.local.automl.settings import AutoMLSettings
from capc.local.automl.training_data import TrainingData
from capc.state.tracking import COMPLETED, FAILED

ENSEMBLE_ITERATIONS = 15  # Azure's default ensemble_iterations
VOTE_SCORING_FOLDS = 5  # the vote is scored out of fold: selected on 4/5 of the validation rows, judged on the rest
STACK_MAX_MEMBERS = 6
# Extra time the ensembles get when the search used up the whole timeout.
ENSEMBLE_GRACE_SHARE, ENSEMBLE_GRACE_S = 0.05, 5.0


def build_ensembles(settings: AutoMLSettings, search: Search, data: TrainingData, deadline: float,
                    notes: list[str]) -> tuple[list[tuple[Candidate, dict, np.ndarray]], dict[int, object]]:
    """The ensembles the job enables, each as (candidate, AutoMLModel fields, its predictions on the shared
    validation rows), none that could not be built; and the best candidate of each learner that was refitted on all
    rows as a member (candidate index -> fitted flaml.AutoML): models of their own that the selection may register
    when a serving budget asks for less."""
    if not (settings.enable_vote_ensemble or settings.enable_stack_ensemble) or search.listener.validation_y is None:
        return [], {}
    # Azure runs its ensemble iterations even when the search used the whole budget; so does this, in a
    # bounded extra slice of time when the search overran.
    grace = max(ENSEMBLE_GRACE_S, ENSEMBLE_GRACE_SHARE * settings.timeout_minutes * 60)
    builder = _EnsembleBuilder(settings, search, data, max(deadline, time.monotonic() + grace), notes)
    built = []
    with quiet_learners(settings.threads):
        if settings.enable_vote_ensemble:
            built.append(builder.voting())
        if settings.enable_stack_ensemble:
            built.append(builder.stacking())
    learner_bests = {r.candidate.index: builder.fitted[r.candidate.index] for r in builder.learners if r.candidate.index in builder.fitted}
    return [b for b in built if b is not None], learner_bests


class _EnsembleBuilder:
    """Azure's VotingEnsemble and StackEnsemble, from the candidates' shared validation predictions.

    Members are refitted on all the training rows (the search's best is already), within what is left of
    the timeout; a member that would not fit in time is left out, and an ensemble of fewer than two is none.
    """

    def __init__(self, settings: AutoMLSettings, search: Search, data: TrainingData, deadline: float, notes: list[str]):
        self.custom_hp = search.custom_hp
        self.settings = settings
        self.scorer = search.scorer
        self.goal = settings.goal
        self.y = search.listener.validation_y
        with_outputs = [r for r in search.listener.records if r.output is not None]
        self.library = ensemble_library(with_outputs, self.goal, ENSEMBLE_LIBRARY_SIZE)
        self.learners = best_per_learner(with_outputs, self.goal)
        self.folds = search.listener.folds
        self.automl = search.automl
        self.X = data.X
        self.y_fit = data.y_fit
        self.deadline = deadline
        self.notes = notes
        self.fitted: dict[int, object] = {}
        self.split_ratio = settings.validation_data_size or 0.1

    def _primary(self, y: np.ndarray, output: np.ndarray) -> float:
        return self.scorer.score(y, output, only=self.settings.primary_metric)[self.settings.primary_metric]

    def _greedy_selection(self, outputs: list[np.ndarray], rows: np.ndarray) -> list[int]:
        """Greedy selection with replacement (Caruana et al.) judged on `rows` of the validation predictions: the
        library indices of the best prefix of ENSEMBLE_ITERATIONS picks (a model picked twice weighs double)."""
        y = self.y[rows]
        chosen: list[int] = []
        total = np.zeros_like(outputs[0][rows])
        best_value, best_chosen = None, None
        for _ in range(ENSEMBLE_ITERATIONS):
            step_value, step_pick = None, None
            for i, output in enumerate(outputs):
                value = self._primary(y, (total + output[rows]) / (len(chosen) + 1))
                if step_value is None or self.goal.better(value, step_value):
                    step_value, step_pick = value, i
            chosen.append(step_pick)
            total = total + outputs[step_pick][rows]
            if best_value is None or self.goal.better(step_value, best_value):
                best_value, best_chosen = step_value, list(chosen)
        return best_chosen

    def _vote_out_of_fold(self, outputs: list[np.ndarray]) -> np.ndarray:
        """The vote's predictions on the validation rows, each row's from a selection made without it (5 folds
        of those rows): what the ensemble is scored and reported by, as the stack's meta-learner is."""
        from sklearn.model_selection import KFold, StratifiedKFold

        n_rows = len(self.y)
        folds = min(VOTE_SCORING_FOLDS, n_rows)
        if self.settings.task == "classification" and np.bincount(self.y).min() >= folds:
            splitter = StratifiedKFold(folds, shuffle=True, random_state=self.settings.seed)
        else:
            splitter = KFold(folds, shuffle=True, random_state=self.settings.seed)
        voted = np.zeros_like(outputs[0], dtype=float)
        for fit_rows, score_rows in splitter.split(np.zeros(n_rows), self.y):
            picks = self._greedy_selection(outputs, fit_rows)
            voted[score_rows] = sum(outputs[i][score_rows] for i in picks) / len(picks)
        return voted

    def voting(self):
        if len(self.library) < 2:
            return None
        start = time.monotonic()
        outputs = [r.output for r in self.library]
        counts = Counter(self._greedy_selection(outputs, np.arange(len(self.y))))
        if len(counts) < 2:
            self.notes.append("VotingEnsemble: the selection kept a single model, so no ensemble was built")
            return None
        picks = sorted(counts, key=lambda i: (-counts[i], i))
        members = self._fit_members([self.library[i] for i in picks])
        if members is None:
            return None
        kept = [i for i in picks if self.library[i].candidate.index in members]
        weights = [counts[i] / sum(counts[j] for j in kept) for i in kept]
        output = self._vote_out_of_fold(outputs)
        records = [self.library[i] for i in kept]
        candidate = self._candidate(names.VOTING_ENSEMBLE, records, weights, output, time.monotonic() - start)
        model = dict(members=[members[r.candidate.index] for r in records], weights=weights, stacker=None, kind="vote")
        return candidate, model, output

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
        return candidate, model, output

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
            duration_s=duration, status=COMPLETED if math.isfinite(value) else FAILED, train_rows=len(self.X),
        )

    def _fit_members(self, records: list[TrialRecord]) -> dict[int, object] | None:
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

    def _is_search_best(self, record: TrialRecord) -> bool:
        best_config = {k: plain(v) for k, v in (self.automl.best_config or {}).items() if k != "FLAML_sample_size"}
        return record.candidate.engine_estimator == self.automl.best_estimator and record.config == best_config

    def _refit(self, record: TrialRecord):
        member = new_automl()
        # max_iter=1: FLAML trains the starting point on all rows without evaluating it.
        member.fit(
            self.X, self.y_fit, task=self.settings.task, estimator_list=[record.candidate.engine_estimator],
            starting_points={record.candidate.engine_estimator: dict(record.config)}, max_iter=1,
            eval_method="holdout", retrain_full=True, n_jobs=self.settings.threads, seed=self.settings.seed, verbose=0,
            skip_transform=self.settings.featurization == "off", custom_hp=self.custom_hp,
        )
        return member
