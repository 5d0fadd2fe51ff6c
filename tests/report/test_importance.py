"""Feature importance: permutation of the registered model's validation rows, found again from what its run stored.

A real bank-marketing model (tests/bank_models.py) and a job folder built from a small bank spec; the stored
held-out predictions are written as a trial script writes them (with row_index), so no engine runs here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.errors import CapcError
from capc.report import figures, importance
from capc.state.held_out import HeldOutPredictions
from capc.state.registry import ModelVersion

from bank_models import DATA, save_model
from repo import csv_head

ROWS = 600


def _job_folder(workdir: Path) -> Path:
    csv_head(DATA, workdir / "data" / "bank.csv", ROWS)
    spec = workdir / "bank.yaml"
    spec.write_text("name: bank-importance\ndataset: {path: data/bank.csv, format: csv, target: y, validation_fraction: 0.25}\n"
                    "task: classification\nmetric: AUC_weighted\nsweep:\n  model: logistic_regression\n"
                    "  search_space: {C: 'uniform(0.1, 2)'}\n")
    result = CliRunner().invoke(cli, ["build", str(spec), "--out", str(workdir / "generated")])
    assert result.exit_code == 0, result.output
    return workdir / "generated" / "bank-importance"


def _registered(workdir: Path, capc_home: Path, source: str = "sweep") -> ModelVersion:
    model = ModelVersion(name="bank-importance", version=1, task="classification", metric="AUC_weighted", value=0.9,
                         goal="maximize", source=source, run_id="0" * 32, spec_sha256="0" * 64,
                         job_dir=str(_job_folder(workdir)), created="")
    save_model(model.model_dir, rows=300, pip_requirements=["scikit-learn"])  # trained on the first 300 rows only
    return model


def _holdout(rows: np.ndarray, **changes) -> HeldOutPredictions:
    labels = pd.read_csv(DATA, nrows=ROWS)["y"].to_numpy()
    fields = dict(task="classification", split="holdout", folds=None, fraction=0.25, seed=42, training_rows=ROWS,
                  y_true=labels[rows].tolist(), y_pred=labels[rows].tolist(), classes=["no", "yes"],
                  probabilities=[[0.5, 0.5]] * len(rows), row_index=rows.tolist())
    return HeldOutPredictions(**{**fields, **changes})


def test_importance_on_the_stored_holdout_rows_with_their_count(workdir, capc_home):
    model = _registered(workdir, capc_home)
    rows = np.arange(300, 600)  # the rows the model never trained on
    found = importance.importance(model, _holdout(rows), max_rows=200, repeats=3)
    assert found.held_out and found.rows == 200 and found.validation_rows == 300 and found.repeats == 3
    assert "never trained on them" in found.how and found.uses == "200 held-out rows (a seeded sample of 300), each feature shuffled 3 times"
    assert len(found.features) == 20 and "y" not in {f["feature"] for f in found.features}
    assert found.features[0]["feature"] == "duration"  # the call's length drives the bank outcome, as is well known
    assert found.features[0]["importance"] > 0.05 and 0.5 < found.baseline <= 1.0
    assert [f["importance"] for f in found.features] == sorted((f["importance"] for f in found.features), reverse=True)
    again = importance.importance(model, _holdout(rows), max_rows=200, repeats=3)
    assert again.to_dict() == found.to_dict()  # seeded: the report and models show --json give the same figures

    svg = figures.feature_importance(found.features, found.metric, found.rows, top=10)
    assert svg.startswith('<svg class="figure" role="img" id="importance"')
    assert "feature importance (top 10 of 20, 200 rows)" in svg and ">duration<" in svg
    assert "loss of AUC_weighted when the feature is shuffled" in svg


def test_a_model_refitted_on_every_row_says_it_trained_on_them(workdir, capc_home):
    model = _registered(workdir, capc_home)
    labels = pd.read_csv(DATA, nrows=ROWS)["y"].to_numpy()
    order = np.random.default_rng(1).permutation(ROWS)  # out-of-fold predictions come fold by fold
    stored = _holdout(order, split="cross_validation", folds=3, fraction=None, row_index=None, y_true=labels[order].tolist())
    found = importance.importance(model, stored, max_rows=100, repeats=2)
    assert not found.held_out and found.validation_rows == ROWS and found.rows == 100
    assert "3-fold cross-validation" in found.how and "has trained on these rows" in found.how


def test_an_automl_holdout_uses_every_labelled_row(workdir, capc_home):
    model = _registered(workdir, capc_home, source="automl")
    found = importance.importance(model, _holdout(np.arange(300, 600), row_index=None), max_rows=100, repeats=1)
    assert not found.held_out and found.validation_rows == ROWS and found.rows == 100
    assert "drawn by FLAML" in found.how and "has trained on these rows" in found.how


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"training_rows": 500}, "has 600 labelled rows, but the run's split was drawn from 500"),
        ({"row_index": None}, "stored no row positions for its holdout split"),
        ({"y_true": ["yes"] * 300}, "do not match the job folder's training table"),
    ],
)
def test_rows_that_cannot_be_found_again_are_refused(workdir, capc_home, changes, message):
    model = _registered(workdir, capc_home)
    with pytest.raises(CapcError, match=message):
        importance.importance(model, _holdout(np.arange(300, 600), **changes), max_rows=50, repeats=1)


def test_models_show_json_carries_the_same_figures(workdir, capc_home, monkeypatch):
    import json

    from capc.state import held_out, registry

    model = _registered(workdir, capc_home)
    stored = _holdout(np.arange(300, 600))
    monkeypatch.setattr(registry, "get", lambda ref: model)
    monkeypatch.setattr(held_out, "load", lambda client, run_id: stored)
    shown = CliRunner().invoke(cli, ["models", "show", "bank-importance", "--json"])
    assert shown.exit_code == 0, shown.output
    figures_shown = json.loads(shown.stdout)["feature_importance"]
    assert figures_shown == importance.importance(model, stored).to_dict()
    assert figures_shown["rows"] == 300 and figures_shown["held_out"] and figures_shown["repeats"] == importance.REPEATS
    monkeypatch.setattr(held_out, "load", lambda client, run_id: None)
    none = json.loads(CliRunner().invoke(cli, ["models", "show", "bank-importance", "--json"]).stdout)["feature_importance"]
    assert none == {"error": "the registered run stored no predictions on its validation rows, so they cannot be found again."}
