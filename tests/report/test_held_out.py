"""The report judges an AutoML winner on rows it did not train on: the local engine keeps the winner's
out-of-fold (or holdout) predictions as it evaluates it, and the report's held-out metric on them is the value
logged for the winner: equal for pooled metrics (accuracy, MAE) over folds of equal size, close for AUC.

Small samples of the reference data, a few trials each, so the file takes seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capc.local.automl import search
from capc.local.automl import AutoMLSettings, run_automl
from capc.report.evaluation import from_stored
from capc.state import held_out
from capc.state.registry import ModelVersion
from repo import DATA


def sample(csv: str, rows: int) -> pd.DataFrame:
    return pd.read_csv(DATA / csv).sample(rows, random_state=0).reset_index(drop=True)


def version(result, **changes) -> ModelVersion:
    fields = dict(name="m", version=1, task=result.settings.task, metric=result.settings.primary_metric,
                  value=result.best.value, goal=result.settings.goal, source="automl", run_id="r" * 32,
                  spec_sha256="0" * 64, job_dir="", created="")
    return ModelVersion(**{**fields, **changes})


def digits(**changes) -> AutoMLSettings:
    return AutoMLSettings(**{**dict(task="classification", primary_metric="accuracy", target_column="label",
                                    n_cross_validations=3, timeout_minutes=1, max_trials=4, enable_vote_ensemble=False,
                                    enable_stack_ensemble=False, allowed_algorithms=("LightGBM", "RandomForest")),
                             **changes})


@pytest.fixture(scope="module")
def digits_cv():
    frame = sample("digits/digits_train.csv", 300)  # 3 folds of 100 rows: pooled accuracy is the mean of the folds'
    return frame, run_automl(frame, digits())


def test_an_automl_winner_keeps_its_out_of_fold_predictions(digits_cv):
    frame, result = digits_cv
    stored = result.held_out
    assert stored.split == "cross_validation" and stored.folds == 3 and not stored.recomputed
    assert stored.rows == stored.training_rows == len(frame)  # every row once, predicted by a model that did not see it
    assert sorted(stored.y_true) == sorted(frame["label"].tolist())
    assert stored.classes == sorted(frame["label"].unique().tolist())
    assert np.asarray(stored.probabilities).shape == (300, len(stored.classes))


def test_held_out_accuracy_equals_the_winners_logged_value_over_equal_folds(digits_cv):
    _, result = digits_cv
    evaluation = from_stored(version(result), result.held_out)
    assert evaluation.held_out and evaluation.rows == 300
    assert evaluation.primary == ("accuracy", pytest.approx(result.best.value, abs=1e-12))
    assert evaluation.scores["accuracy"] == pytest.approx(result.best.value, abs=1e-12)
    assert "out-of-fold predictions of 3-fold cross-validation" in evaluation.uses


def test_held_out_auc_is_close_to_the_logged_mean_over_folds(digits_cv):
    _, result = digits_cv
    evaluation = from_stored(version(result, metric="AUC_weighted"), result.held_out)
    assert evaluation.primary[1] == pytest.approx(result.best.metrics["AUC_weighted"], abs=0.02)


def test_a_regression_holdout_gives_the_logged_error_exactly():
    frame = sample("housing/housing.csv", 500)
    settings = AutoMLSettings(task="regression", primary_metric="normalized_mean_absolute_error",
                              target_column="median_house_value", validation_data_size=0.2, timeout_minutes=1,
                              max_trials=3, enable_vote_ensemble=False, enable_stack_ensemble=False)
    result = run_automl(frame, settings)
    stored = result.held_out
    assert stored.split == "holdout" and stored.fraction == 0.2 and stored.rows == 100 and stored.training_rows == 500
    evaluation = from_stored(version(result), stored)
    assert evaluation.primary == ("normalized_mean_absolute_error", pytest.approx(result.best.value, abs=1e-12))
    y_range = frame["median_house_value"].max() - frame["median_house_value"].min()
    assert evaluation.scores["mean absolute error"] == pytest.approx(result.best.value * y_range, rel=1e-9)
    assert "100 held-out rows: the 20% holdout split of 500" in evaluation.uses


def test_an_ensemble_winner_is_judged_on_its_own_validation_predictions():
    frame = sample("digits/digits_train.csv", 300)
    result = run_automl(frame, digits(max_trials=6, enable_vote_ensemble=True, enable_stack_ensemble=True,
                                      allowed_algorithms=("LightGBM", "RandomForest", "LogisticRegression")))
    ensembles = [c for c in result.candidates if c.estimator in ("VotingEnsemble", "StackEnsemble")]
    assert ensembles, "no ensemble was built"
    # Whoever won, ensemble or not: its stored predictions score exactly its logged value (an ensemble is scored
    # on the pooled validation rows themselves).
    evaluation = from_stored(version(result), result.held_out)
    assert evaluation.primary[1] == pytest.approx(result.best.value, abs=1e-12)


def test_when_the_search_kept_no_predictions_of_the_best_they_are_computed_again(monkeypatch):
    keep = search.TrialListener._keep_if_best

    def forgetful_search(listener, candidate, pending):  # the search (3 trials) keeps nothing; the re-validation does
        if listener.settings.max_trials == 1:
            keep(listener, candidate, pending)

    monkeypatch.setattr(search.TrialListener, "_keep_if_best", forgetful_search)
    frame = sample("digits/digits_train.csv", 300)
    result = run_automl(frame, digits(max_trials=3))
    stored = result.held_out
    assert stored.recomputed and stored.rows == 300
    assert any("computed again after the search" in n for n in result.notes)
    # The same configuration on the same folds (FLAML draws them with a fixed seed) scores what it scored.
    evaluation = from_stored(version(result), stored)
    assert evaluation.primary[1] == pytest.approx(result.best.value, abs=1e-9)
    assert "computed once after the search" in evaluation.how


def test_stored_predictions_round_trip_through_the_run(digits_cv, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    assert held_out.load(client, run_id) is None
    _, result = digits_cv
    held_out.log(client, run_id, result.held_out)
    assert held_out.load(client, run_id) == result.held_out


def test_a_broken_artifact_is_a_clear_error(tmp_path, monkeypatch):
    import mlflow

    from capc.errors import CapcError

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.log_dict(run_id, {"task": "regression", "split": "sideways", "y_true": [1], "y_pred": [1]}, held_out.ARTIFACT_PATH)
    with pytest.raises(CapcError, match="held-out predictions stored with run .* cannot be read"):
        held_out.load(client, run_id)
