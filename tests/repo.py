"""What every test folder shares as plain names: the repository's reference specs and data, small samples of that
data, and a private $CAPC_HOME for tests that run the engine.

A module rather than tests/conftest.py because test modules need these names at import time (parametrize lists),
and conftest modules, one per folder, cannot be imported by name. The fixtures built on them are in tests/conftest.py.
"""

from __future__ import annotations

import textwrap
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


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    """A spec file from an indented test string."""
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def digits_spec(
    workdir: Path, *, name: str = "digits-small", rows: int = 400, automl: str = "{timeout_minutes: 1, max_trials: 4}",
    sweep_model: str = "logistic_regression", extra: str = "",
) -> Path:
    """A small digits spec (a 2-trial grid sweep and a short AutoML) on the first `rows` rows, as workdir/digits.yaml."""
    csv_head(DATA / "digits/digits_train.csv", workdir / "data/digits.csv", rows)
    spec = workdir / "digits.yaml"
    spec.write_text(
        f"name: {name}\n"
        "dataset: {path: data/digits.csv, format: csv, target: label, cross_validations: 3}\n"
        "task: classification\nmetric: accuracy\n"
        f"automl: {automl}\n"
        f"sweep:\n  model: {sweep_model}\n  sampling: grid\n"
        "  search_space: {C: 'choice(0.5, 2.0)', max_iter: 'choice(50)'}\n"
        "  limits: {max_total_trials: 2, max_concurrent_trials: 2}\n"
        # A spec without a seed draws one per run; 42 is the seed these tests were written against.
        + ("" if "seed:" in extra else "seed: 42\n") + extra
    )
    return spec
