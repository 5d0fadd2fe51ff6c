"""What every test folder shares as plain names: the repository's reference specs and data, small samples of that
data, and a private $CAPC_HOME for tests that run the engine.

A module rather than tests/conftest.py because test modules need these names at import time (parametrize lists),
and conftest modules, one per folder, cannot be imported by name. The fixtures built on them are in tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
DATA = SPECS / "data"
REFERENCE_SPECS = sorted(SPECS.glob("*.yaml"))
REFERENCE_NAMES = tuple(path.stem for path in REFERENCE_SPECS)
TEST_DOMAIN = "capc.test"  # the fake services' names: resolve to 127.0.0.1 under the network guard


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
