"""Shared set-up for tests that run the local engine: a private $CAPC_HOME and small samples of the real data."""

from __future__ import annotations

from pathlib import Path

import pytest


def use_private_capc_home(patch: pytest.MonkeyPatch, root: Path) -> None:
    """Engine state under `root/home`, `root` as the working directory, no MLflow telemetry."""
    patch.setenv("CAPC_HOME", str(root / "home"))
    patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    patch.chdir(root)


def csv_head(source: Path, target: Path, rows: int) -> None:
    """The header and first `rows` rows of `source`, written to `target`."""
    lines = source.read_text().splitlines(keepends=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(lines[: rows + 1]))
