"""Fixtures of the spec-stage tests: a working folder with a small csv whose column names are awkward on purpose."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

COLUMNS = ["age", "job", "cons.conf.idx", "two words", "it's", "y"]
ROWS = [
    [30, "admin.", -42.7, "a", "x", "no"],
    [41, "blue-collar", -36.4, "b", "y", "yes"],
    [25, "student", -41.8, "c", "z", "no"],
]


@pytest.fixture
def workdir(workdir: Path) -> Path:
    """The shared working folder (tests/conftest.py) with data/bank.csv, as the inline specs name it."""
    data = workdir / "data"
    data.mkdir()
    with open(data / "bank.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(ROWS)
    return workdir
