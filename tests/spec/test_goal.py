"""The optimisation goal (capc.goal): which score is better, best-of and leaderboard order, non-scores last."""

from __future__ import annotations

import math

import pytest

from capc import azure_names
from capc.goal import Goal, is_score

NAN, INF = math.nan, math.inf


def test_goal_comes_from_azures_metric_table_and_equals_its_spelling():
    assert Goal.of("classification", "accuracy") is Goal.MAXIMIZE
    assert Goal.of("regression", "normalized_root_mean_squared_error") is Goal.MINIMIZE
    assert Goal("maximize") == azure_names.MAXIMIZE and f"{Goal.MINIMIZE}" == "minimize"
    assert Goal(Goal.MAXIMIZE) is Goal.MAXIMIZE
    with pytest.raises(ValueError):
        Goal("max")


@pytest.mark.parametrize(("goal", "a", "b", "expected"), [
    (Goal.MAXIMIZE, 0.9, 0.8, True),
    (Goal.MAXIMIZE, 0.8, 0.9, False),
    (Goal.MAXIMIZE, 0.8, 0.8, False),
    (Goal.MINIMIZE, 0.1, 0.2, True),
    (Goal.MINIMIZE, 0.2, 0.1, False),
    (Goal.MAXIMIZE, NAN, 0.1, False),  # a failed run never wins
    (Goal.MINIMIZE, INF, 0.1, False),
    (Goal.MAXIMIZE, 0.1, NAN, True),  # and anything scored beats it
    (Goal.MINIMIZE, 0.1, None, True),
    (Goal.MINIMIZE, None, None, False),
    (Goal.MAXIMIZE, "0.9", 0.1, False),
])
def test_better(goal, a, b, expected):
    assert goal.better(a, b) is expected


def test_best_skips_non_scores_and_keeps_the_first_of_a_tie():
    runs = [("a", NAN), ("b", 0.5), ("c", 0.7), ("d", 0.7), ("e", None)]
    assert Goal.MAXIMIZE.best(runs, lambda r: r[1]) == ("c", 0.7)
    assert Goal.MINIMIZE.best(runs, lambda r: r[1]) == ("b", 0.5)
    assert Goal.MAXIMIZE.best([("a", NAN)], lambda r: r[1]) is None
    assert Goal.MINIMIZE.best([3.0, 1.0, 2.0]) == 1.0


def test_ranked_is_best_first_leaves_out_non_scores_and_breaks_ties():
    runs = [("a", 0.5, 3), ("b", NAN, 0), ("c", 0.9, 2), ("d", 0.5, 1), ("e", INF, 4)]
    score = lambda r: r[1]  # noqa: E731
    assert [r[0] for r in Goal.MAXIMIZE.ranked(runs, score)] == ["c", "a", "d"]
    assert [r[0] for r in Goal.MINIMIZE.ranked(runs, score)] == ["a", "d", "c"]
    assert [r[0] for r in Goal.MINIMIZE.ranked(runs, score, tiebreak=lambda r: r[2])] == ["d", "a", "c"]


def test_reached_is_inclusive_in_the_goals_direction():
    assert Goal.MAXIMIZE.reached(0.9, 0.9) and not Goal.MAXIMIZE.reached(0.89, 0.9)
    assert Goal.MINIMIZE.reached(0.1, 0.1) and not Goal.MINIMIZE.reached(0.11, 0.1)


def test_is_score():
    assert is_score(1) and is_score(0.5) and not is_score(NAN) and not is_score(-INF) and not is_score(None)
