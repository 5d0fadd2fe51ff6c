"""Fixtures of the compile tests (the CLI's compile commands): a CLI runner and a working folder with data."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workdir(workdir: Path) -> Path:
    """The shared working folder (tests/conftest.py) with data/bank.csv, as the inline specs name it."""
    (workdir / "data").mkdir()
    with open(workdir / "data" / "bank.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["age", "job", "cons.conf.idx", "two words", "y"])
        writer.writerows(
            [[30, "admin.", -42.7, "a", "no"], [41, "blue-collar", -36.4, "b", "yes"], [25, "student", -41.8, "c", "no"]]
        )
    return workdir
