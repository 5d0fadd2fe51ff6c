"""The VotingEnsemble's value is out of fold: the rows that judge a selection never chose it.

Judged on the rows it was selected on, a vote of noise looks better than any of its members (greedy selection
fits the noise of those rows), and would win the job against candidates whose values are honest.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from capc.goal import Goal
from capc.local.automl.ensembles import _EnsembleBuilder
from capc.local.automl.search import TrialScorer


def noise_builder(n_rows=400, n_candidates=10, seed=0):
    rng = np.random.default_rng(seed)
    builder = object.__new__(_EnsembleBuilder)
    builder.y = rng.integers(0, 2, n_rows)
    builder.goal = Goal.of("classification", "accuracy")
    builder.scorer = TrialScorer("classification", "accuracy", 2, 1.0)
    builder.settings = SimpleNamespace(task="classification", primary_metric="accuracy", seed=0)
    positive = rng.random((n_candidates, n_rows))
    outputs = [np.column_stack([1 - p, p]) for p in positive]
    return builder, outputs


def accuracy(y, output):
    return float((output.argmax(axis=1) == y).mean())


def test_a_vote_of_noise_scores_as_noise_out_of_fold_though_it_fits_its_own_rows():
    builder, outputs = noise_builder()
    all_rows = np.arange(len(builder.y))
    picks = builder._greedy_selection(outputs, all_rows)
    in_sample = accuracy(builder.y, sum(outputs[i] for i in picks) / len(picks))
    best_single = max(accuracy(builder.y, o) for o in outputs)
    assert in_sample >= best_single > 0.5  # selected and judged on the same rows: flattering

    out_of_fold = accuracy(builder.y, builder._vote_out_of_fold(outputs))
    assert out_of_fold < in_sample - 0.03
    assert abs(out_of_fold - 0.5) < 0.06


def test_each_row_is_voted_by_a_selection_made_without_it():
    builder, outputs = noise_builder(n_rows=100, n_candidates=4)
    seen = []
    select = builder._greedy_selection

    def spy(outs, rows):
        seen.append(set(rows.tolist()))
        return select(outs, rows)

    builder._greedy_selection = spy
    voted = builder._vote_out_of_fold(outputs)
    assert len(seen) == 5
    judged = [set(range(100)) - rows for rows in seen]
    assert set().union(*judged) == set(range(100))
    assert all(not (a & b) for i, a in enumerate(judged) for b in judged[i + 1:])
    assert voted.shape == outputs[0].shape and np.allclose(voted.sum(axis=1), 1.0)
