"""Where local AutoML's search starts: FLAML's zero-shot configurations, unless the timeout cannot train them."""

from __future__ import annotations

from types import SimpleNamespace

from capc.local.automl.search import STARTING_POINTS, ZERO_SHOT_ROW_FITS_PER_MINUTE, _starting_points


def start(rows, folds, minutes=2, reproducible=False):
    notes = []
    return _starting_points(SimpleNamespace(timeout_minutes=minutes, reproducible=reproducible), rows, folds, notes), notes


def test_the_reference_data_starts_from_the_zero_shot_configurations():
    assert start(21_000, 5) == (STARTING_POINTS, [])  # bank marketing, 5-fold CV
    assert start(13_209, 1) == (STARTING_POINTS, [])  # housing, one holdout


def test_a_million_rows_in_two_minutes_start_cold_and_say_why():
    points, notes = start(1_000_000, 5)
    assert points is None
    assert notes == ["search starts cold (small models, growing), not from FLAML's zero-shot configurations: "
                     "1,000,000 rows x 5 fold(s) per trial is more than 2 minute(s) can train them on"]


def test_the_limit_grows_with_the_timeout():
    rows = ZERO_SHOT_ROW_FITS_PER_MINUTE * 2 // 5
    assert start(rows, 5, minutes=2)[0] == STARTING_POINTS
    assert start(rows + 1, 5, minutes=2)[0] is None
    assert start(rows + 1, 5, minutes=60)[0] == STARTING_POINTS


def test_a_reproducible_search_starts_cold_whatever_the_data():
    points, notes = start(21_000, 5, reproducible=True)
    assert points is None
    assert notes and notes[0].startswith("reproducible: the search starts cold")
