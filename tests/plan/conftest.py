"""Fixtures of the plan-stage tests: the shared working folder with a three-row csv the inline specs name."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


@pytest.fixture
def workdir(workdir: Path) -> Path:
    """The shared working folder (tests/conftest.py: private $CAPC_HOME) with data/table.csv."""
    (workdir / "data").mkdir()
    with open(workdir / "data" / "table.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["x", "y"], [1, "no"], [2, "yes"], [3, "no"]])
    return workdir
