"""Local AutoML engine (capc.local.automl): job settings, name tables, the FLAML search, ensembles, the saved model.

Runs on 600-row samples of the reference data with a few trials each, so the whole file takes seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from capc import azure_metrics, azure_names
from capc.errors import CapcError
from capc.local.automl import AutoMLSettings, algorithm_name, names, resolve_estimators, run_automl

from repo import DATA
CLASSIFICATION_METRICS = set(azure_names.AUTOML_METRICS["classification"])
REGRESSION_METRICS = set(azure_names.AUTOML_METRICS["regression"])

# automl_job.yml as `capc build` writes it for specs/bankmarketing.yaml.
BANK_JOB = textwrap.dedent("""\
    $schema: https://azuremlschemas.azureedge.net/latest/autoMLJob.schema.json
    type: automl
    experiment_name: "bankmarketing"
    compute: "azureml:cpu-cluster"
    task: "classification"
    primary_metric: "accuracy"
    target_column_name: "y"
    training_data:
      type: mltable
      path: "./data"
    n_cross_validations: 5
    limits:
      timeout_minutes: 30
      trial_timeout_minutes: 10
      max_trials: 40
      max_concurrent_trials: 4
      enable_early_termination: true
    training:
      enable_stack_ensemble: true
      enable_vote_ensemble: true
      allowed_training_algorithms: ["light_gbm", "xg_boost_classifier", "random_forest", "extreme_random_trees", "logistic_regression"]
    featurization:
      mode: "auto"
""")


def sample(csv: str, rows: int = 600) -> pd.DataFrame:
    return pd.read_csv(DATA / csv).sample(rows, random_state=0).reset_index(drop=True)


def settings(**fields) -> AutoMLSettings:
    base = dict(timeout_minutes=2, trial_timeout_minutes=1, max_trials=8, n_cross_validations=3)
    return AutoMLSettings(**{**base, **fields})


class Recorder(list):
    """on_candidate that keeps what it was told."""

    def __call__(self, candidate):
        self.append(candidate)


# ------------------------------------------------------------------ shared runs (one search per dataset)


@pytest.fixture(scope="module")
def bank():
    frame = sample("bankmarketing/bankmarketing_train.csv")
    seen = Recorder()
    # Two cheap learners: FLAML tries each early, so the stack has two different members to combine.
    job = settings(task="classification", primary_metric="accuracy", target_column="y", max_trials=10,
                   allowed_algorithms=("LightGBM", "ExtremeRandomTrees"))
    return frame, job, run_automl(frame, job, on_candidate=seen), seen


@pytest.fixture(scope="module")
def housing():
    frame = sample("housing/housing.csv")
    job = settings(task="regression", primary_metric="normalized_root_mean_squared_error",
                   target_column="median_house_value", n_cross_validations=None, validation_data_size=0.25,
                   blocked_algorithms=("KNN", "SGD"))
    return frame, job, run_automl(frame, job)


@pytest.fixture(scope="module")
def svm():
    """Azure's SVM alone (capc's kernel SVC learner), with the vote on: its members are refitted SVMs."""
    frame = sample("digits/digits_train.csv", 300)
    job = settings(task="classification", primary_metric="accuracy", target_column="label", max_trials=6,
                   allowed_algorithms=("SVM",), enable_stack_ensemble=False)
    return frame, job, run_automl(frame, job)


@pytest.fixture(scope="module")
def digits():
    frame = sample("digits/digits_train.csv")
    job = settings(task="classification", primary_metric="AUC_weighted", target_column="label",
                   allowed_algorithms=("LogisticRegression", "KNN"), enable_stack_ensemble=False)
    return frame, job, run_automl(frame, job)


# ------------------------------------------------------------------ settings from automl_job.yml


def test_settings_read_every_field_of_the_generated_job():
    s = AutoMLSettings.from_job_yaml(yaml.safe_load(BANK_JOB))
    assert (s.task, s.primary_metric, s.target_column) == ("classification", "accuracy", "y")
    assert (s.n_cross_validations, s.validation_data_size) == (5, None)
    assert (s.timeout_minutes, s.trial_timeout_minutes, s.max_trials, s.max_concurrent_trials) == (30, 10, 40, 4)
    assert s.enable_early_termination and s.exit_score is None
    assert s.allowed_algorithms == ("LightGBM", "XGBoostClassifier", "RandomForest", "ExtremeRandomTrees", "LogisticRegression")
    assert s.enable_vote_ensemble and s.enable_stack_ensemble and s.featurization == "auto"
    assert s.goal == azure_names.MAXIMIZE


def test_settings_fill_azure_defaults_and_read_holdout_and_exit_score():
    s = AutoMLSettings.from_job_yaml({
        "task": "regression", "target_column_name": "price", "validation_data_size": 0.2,
        "limits": {"exit_score": 0.05}, "training": {"blocked_training_algorithms": ["knn"], "enable_stack_ensemble": False},
        "featurization": {"mode": "off"},
    })
    assert s.primary_metric == "normalized_root_mean_squared_error" and s.goal == azure_names.MINIMIZE
    assert (s.validation_data_size, s.n_cross_validations, s.exit_score) == (0.2, None, 0.05)
    assert (s.timeout_minutes, s.trial_timeout_minutes, s.max_trials) == (360, 30, 1000)
    assert s.blocked_algorithms == ("KNN",) and not s.enable_stack_ensemble and s.enable_vote_ensemble
    assert s.featurization == "off"


@pytest.mark.parametrize("spelling", ["light_gbm", "LightGBM", "lightgbm", "LIGHT_GBM"])
def test_algorithm_spellings_all_map_to_azure_name(spelling):
    assert algorithm_name("classification", spelling) == "LightGBM"


def test_metric_spelling_from_yaml_is_normalised():
    s = AutoMLSettings.from_job_yaml({"task": "classification", "primary_metric": "auc_weighted", "target_column_name": "y"})
    assert s.primary_metric == "AUC_weighted"


def test_unknown_algorithm_is_a_capc_error_with_a_hint():
    with pytest.raises(CapcError) as err:
        AutoMLSettings.from_job_yaml({"task": "classification", "target_column_name": "y",
                                      "training": {"allowed_training_algorithms": ["light_gmb"]}})
    assert "`light_gmb` is not an Azure AutoML classification algorithm" in err.value.message
    assert err.value.hint == "did you mean `light_gbm`?"


def test_regression_only_algorithm_is_refused_for_classification():
    with pytest.raises(CapcError, match="it is a regression one"):
        AutoMLSettings.from_job_yaml({"task": "classification", "target_column_name": "y",
                                      "training": {"allowed_training_algorithms": ["elastic_net"]}})


def test_unknown_metric_and_non_tabular_task_are_capc_errors():
    with pytest.raises(CapcError) as err:
        AutoMLSettings.from_job_yaml({"task": "regression", "primary_metric": "accuracy", "target_column_name": "y"})
    assert "not an Azure AutoML primary metric for regression" in err.value.message
    with pytest.raises(CapcError, match="image_classification"):
        AutoMLSettings.from_job_yaml({"task": "image_classification", "target_column_name": "label"})
    with pytest.raises(CapcError, match="target_column_name"):
        AutoMLSettings.from_job_yaml({"task": "regression"})


def test_cross_validation_and_holdout_together_are_refused():
    with pytest.raises(CapcError, match="not both"):
        AutoMLSettings(task="regression", primary_metric="r2_score", target_column="y", n_cross_validations=3,
                       validation_data_size=0.2)


# ------------------------------------------------------------------ name tables


def test_every_azure_algorithm_and_metric_has_a_local_entry():
    for task in ("classification", "regression"):
        assert set(names.ALGORITHM_ESTIMATORS[task]) == set(azure_names.ALGORITHMS[task])
        assert set(azure_names.AUTOML_METRICS[task]) <= set(names.SCORERS[task])
        assert set(names.FLAML_BUILTIN[task]) == set(azure_names.AUTOML_METRICS[task])
        for estimators in names.ALGORITHM_ESTIMATORS[task].values():
            assert all(e in names.ESTIMATOR_ORDER for e in estimators or ())


def test_allowed_and_blocked_algorithms_map_to_flaml_estimators_and_skips_are_reported():
    s = AutoMLSettings(task="classification", primary_metric="accuracy", target_column="y",
                       allowed_algorithms=("XGBoostClassifier", "LogisticRegression", "DecisionTree", "KNN"),
                       blocked_algorithms=("KNN",))
    estimators, skipped = resolve_estimators(s)
    assert estimators == ["xgboost", "xgb_limitdepth", "lrl1", "lrl2"]
    assert skipped == ["DecisionTree"]
    with_svm = replace(s, allowed_algorithms=("SVM", "LinearSVM", "KNN"), blocked_algorithms=())
    assert resolve_estimators(with_svm) == (["svc", "kernel_svc", "kneighbor"], [])
    assert resolve_estimators(replace(with_svm, allowed_algorithms=(), blocked_algorithms=("SVM",)))[0].count("kernel_svc") == 0


@pytest.mark.parametrize("n_classes", [2, 4])
def test_scorers_agree_with_flaml_builtins(n_classes):
    from flaml.automl.ml import metric_loss_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, 300)
    proba = rng.dirichlet(np.ones(n_classes), 300)
    proba[np.arange(300), y] += 0.3
    proba /= proba.sum(axis=1, keepdims=True)
    for metric in ("accuracy", "AUC_weighted"):
        flaml_name = names.flaml_builtin_metric("classification", metric, n_classes)
        prediction = np.argmax(proba, axis=1) if flaml_name == "accuracy" else (proba[:, 1] if n_classes == 2 else proba)
        ours = names.SCORERS["classification"][metric](y, np.argmax(proba, axis=1), proba, n_classes)
        assert ours == pytest.approx(1 - metric_loss_score(flaml_name, prediction, y, labels=list(range(n_classes))))
    y_true = rng.normal(size=200)
    y_pred = y_true + rng.normal(scale=0.5, size=200)
    assert azure_metrics.r2_score(y_true, y_pred, 1.0) == pytest.approx(1 - metric_loss_score("r2", y_pred, y_true))


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_classification_scorers_equal_sklearn_with_ties(n_classes):
    from sklearn import metrics

    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 2000)
    proba = np.round(rng.dirichlet(np.ones(n_classes), 2000), 2)  # rounding makes tied scores
    proba /= proba.sum(axis=1, keepdims=True)
    predicted, one_hot = np.argmax(proba, axis=1), np.eye(n_classes)[y]
    expected = {
        "accuracy": metrics.accuracy_score(y, predicted),
        "AUC_weighted": metrics.roc_auc_score(y, proba[:, 1]) if n_classes == 2
        else metrics.roc_auc_score(one_hot, proba, average="weighted"),
        "average_precision_score_weighted": metrics.average_precision_score(one_hot, proba, average="weighted"),
        "norm_macro_recall": max(0.0, (metrics.recall_score(y, predicted, average="macro") - 1 / n_classes) / (1 - 1 / n_classes)),
        "precision_score_weighted": metrics.precision_score(y, predicted, average="weighted", zero_division=0),
    }
    for name, scorer in names.SCORERS["classification"].items():
        assert scorer(y, predicted, proba, n_classes) == pytest.approx(expected[name], abs=1e-12), name


def test_regression_scorers_equal_sklearn_and_scipy():
    from scipy.stats import spearmanr
    from sklearn import metrics

    rng = np.random.default_rng(1)
    y = rng.normal(100, 20, 500)
    pred = y + rng.normal(0, 10, 500)
    assert azure_metrics.r2_score(y, pred, 1.0) == pytest.approx(metrics.r2_score(y, pred))
    assert azure_metrics.spearman_correlation(y, pred, 1.0) == pytest.approx(spearmanr(y, pred).statistic)
    assert azure_metrics.mean_absolute_error(y, pred, 1.0) == pytest.approx(metrics.mean_absolute_error(y, pred))
    assert azure_metrics.root_mean_squared_error(y, pred, 1.0) == pytest.approx(metrics.root_mean_squared_error(y, pred))


def test_normalised_errors_divide_by_the_target_range():
    y, pred = np.array([0.0, 10.0, 20.0]), np.array([1.0, 10.0, 23.0])
    assert azure_metrics.normalized_mean_absolute_error(y, pred, 20.0) == pytest.approx((1 + 0 + 3) / 3 / 20)
    assert azure_metrics.normalized_root_mean_squared_error(y, pred, 20.0) == pytest.approx(np.sqrt((1 + 9) / 3) / 20)
    assert azure_metrics.norm_macro_recall(np.array([0, 1, 0, 1]), np.array([0, 1, 1, 0]), None, 2) == pytest.approx(0.0)
    # Worse than chance is floored at chance (Azure documents the range as [0, 1]).
    assert azure_metrics.norm_macro_recall(np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0]), None, 2) == 0.0


# ------------------------------------------------------------------ searches


def test_bank_candidates_are_reported_as_they_finish_with_azure_names(bank):
    frame, job, result, seen = bank
    assert [c.index for c in seen] == [c.index for c in result.candidates] == list(range(len(result.candidates)))
    trials = [c for c in result.candidates if c.estimator not in (names.VOTING_ENSEMBLE, names.STACK_ENSEMBLE)]
    assert len(trials) == job.max_trials
    assert {c.estimator for c in trials} <= {"LightGBM", "ExtremeRandomTrees"}
    assert {c.engine_estimator for c in trials} <= {"lgbm", "extra_tree"}
    for c in trials:
        assert set(c.metrics) == CLASSIFICATION_METRICS
        assert c.status == "completed" and 0.0 <= c.value <= 1.0 and c.value == c.metrics["accuracy"]
        assert c.duration_s > 0 and c.train_rows == 600
        assert all(not isinstance(v, np.generic) for v in c.params.values())


def test_search_starts_from_flamls_zero_shot_configuration_for_the_data(bank):
    """Warm start: the first trial is FLAML's meta-learned suggestion for this data, not its 4-tree cold start."""
    from flaml.default import suggest_config

    frame, job, result, _ = bank
    first = result.candidates[0]
    X, y = frame.drop(columns=["y"]), (frame["y"] == "yes").astype(int)
    suggested = suggest_config("classification", X, y, first.engine_estimator, "", k=1)[0]["hyperparameters"]
    assert first.params.keys() == suggested.keys()
    for key, value in suggested.items():
        assert first.params[key] == pytest.approx(value), key


def test_accuracy_is_maximised_and_the_best_is_served(bank):
    frame, job, result, _ = bank
    completed = [c for c in result.candidates if c.status == "completed"]
    assert result.best.value == max(c.value for c in completed)
    # accuracy, not FLAML's 1 - accuracy: the majority class alone scores ~0.89 on this data
    assert result.best.value > 0.85
    expected_kind = {names.VOTING_ENSEMBLE: "vote", names.STACK_ENSEMBLE: "stack"}.get(result.best.estimator, "single")
    assert result.model.kind == expected_kind


def test_stack_ensemble_is_a_scored_candidate_over_different_learners(bank):
    frame, job, result, _ = bank
    stack = next(c for c in result.candidates if c.estimator == names.STACK_ENSEMBLE)
    assert stack.status == "completed" and set(stack.metrics) == CLASSIFICATION_METRICS
    members = json.loads(stack.params["ensembled_algorithms"].replace("'", '"'))
    assert sorted(set(members)) == ["ExtremeRandomTrees", "LightGBM"]
    model = result.models[stack.index]
    labels = model.predict(frame.drop(columns=["y"]).head(40))
    assert set(labels) <= {"yes", "no"}


def test_bank_model_predicts_string_labels_and_probabilities_from_raw_rows(bank):
    frame, job, result, _ = bank
    rows = frame.drop(columns=["y"]).head(25)
    labels = result.model.predict(rows)
    assert labels.shape == (25,) and set(labels) <= {"yes", "no"}
    proba = result.model.predict_proba(rows)
    assert proba.shape == (25, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(result.model.classes_) == ["no", "yes"]
    # The target column riding along and columns in another order are both fine.
    assert list(result.model.predict(frame.head(25)[list(reversed(frame.columns))])) == list(labels)


def test_housing_regression_handles_missing_values_and_text_and_minimises_nrmse(housing):
    frame, job, result = housing
    assert frame["total_bedrooms"].isna().any() and frame["ocean_proximity"].dtype != float
    completed = [c for c in result.candidates if c.status == "completed"]
    assert result.best.value == min(c.value for c in completed)
    assert "10%" not in " ".join(result.notes) and "25% holdout" in " ".join(result.notes)
    y_range = frame["median_house_value"].max() - frame["median_house_value"].min()
    for c in completed:
        assert set(REGRESSION_METRICS) <= set(c.metrics)
        assert c.metrics["normalized_root_mean_squared_error"] == pytest.approx(c.metrics["root_mean_squared_error"] / y_range)
        assert c.estimator not in ("KNN", "SGD")
    rows = frame.drop(columns=["median_house_value"])
    rows = rows[rows["total_bedrooms"].isna()].head(3)
    predictions = result.model.predict(rows)
    assert predictions.dtype.kind == "f" and np.isfinite(predictions).all()
    with pytest.raises(AttributeError):
        result.model.predict_proba(rows)


def test_digits_multiclass_auc_and_numbers_as_text(digits):
    frame, job, result = digits
    assert set(result.best.metrics) == CLASSIFICATION_METRICS and 0.9 < result.best.value <= 1.0
    assert {c.estimator for c in result.candidates} <= {"LogisticRegression", "KNN", names.VOTING_ENSEMBLE}
    rows = frame.drop(columns=["label"]).head(30)
    expected = result.model.predict(rows)
    assert expected.dtype.kind == "i"
    assert list(result.model.predict(rows.astype(str))) == list(expected)  # JSON clients send strings sometimes


def test_saved_mlflow_model_loads_without_capc_and_predicts_labels(bank, tmp_path):
    frame, job, result, _ = bank
    result.save_mlflow_model(tmp_path / "model")
    assert (tmp_path / "model" / "MLmodel").is_file()
    rows = frame.drop(columns=["y"]).head(5)
    rows.loc[0, "euribor3m"] = None  # a gap the training data never had: featurization imputes it
    rows.to_csv(tmp_path / "rows.csv", index=False)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["capc"] = None  # an Azure scoring container has no capc
        import mlflow.pyfunc, pandas as pd
        model = mlflow.pyfunc.load_model({str(tmp_path / "model")!r})
        print(list(model.predict(pd.read_csv({str(tmp_path / "rows.csv")!r}))))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(list(result.model.predict(rows)))


def test_model_module_runs_where_capc_cannot_be_imported():
    """The served model's module is pickled by value; MLflow loads it where capc is absent."""
    import capc.local.automl.model as model_module

    script = textwrap.dedent(f"""
        import importlib.util, sys
        sys.modules["capc"] = None
        spec = importlib.util.spec_from_file_location("served_model", {model_module.__file__!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(module.AutoMLModel.__name__)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "AutoMLModel"


def test_saved_stack_ensemble_loads_without_capc_and_predicts_probabilities(bank, tmp_path):
    frame, job, result, _ = bank
    stack = next(c for c in result.candidates if c.estimator == names.STACK_ENSEMBLE)
    saved = replace(result, best=stack, model=result.models[stack.index])
    assert saved.model.kind == "stack"
    saved.save_mlflow_model(tmp_path / "model")  # as the engine saves its best model
    rows = frame.drop(columns=["y"]).head(5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["capc"] = None
        import mlflow.sklearn, pandas as pd
        model = mlflow.sklearn.load_model({str(tmp_path / "model")!r})
        rows = pd.read_csv({str(tmp_path / "rows.csv")!r})
        print(type(model).__module__, list(model.predict(rows)), model.predict_proba(rows).round(6).tolist())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    expected = f"{type(saved.model).__module__} {list(saved.model.predict(rows))} {saved.model.predict_proba(rows).round(6).tolist()}"
    assert out.stdout.strip().splitlines()[-1] == expected


def test_svm_runs_as_capcs_kernel_svc_learner_searching_c_gamma_and_scaling(svm):
    frame, job, result = svm
    searched = [c for c in result.candidates if c.engine_estimator == "kernel_svc"]
    assert len(searched) == 6 and all(c.estimator == "SVM" for c in searched)
    assert searched[0].params == pytest.approx({"C": 1.0, "gamma_factor": 1.0, "scaling": "standard"})  # SVC's defaults
    assert len({(c.params["C"], c.params["gamma_factor"]) for c in searched}) == 6
    assert max(c.value for c in searched) > 0.9
    assert not result.skipped_algorithms and not any("skipped" in note for note in result.notes)
    vote = next(c for c in result.candidates if c.estimator == names.VOTING_ENSEMBLE)  # members refitted with the learner
    assert eval(vote.params["ensembled_algorithms"]) == ["SVM"] * len(eval(vote.params["ensembled_algorithms"]))


def test_saved_svm_model_loads_without_capc_and_predicts_probabilities(svm, tmp_path):
    frame, job, result = svm
    index = next(i for i, m in result.models.items() if result.candidates[i].engine_estimator == "kernel_svc")
    saved = replace(result, best=result.candidates[index], model=result.models[index])
    saved.save_mlflow_model(tmp_path / "model")
    rows = frame.drop(columns=["label"]).head(5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["capc"] = None
        import mlflow.sklearn, pandas as pd
        model = mlflow.sklearn.load_model({str(tmp_path / "model")!r})
        rows = pd.read_csv({str(tmp_path / "rows.csv")!r})
        learner = type(model.members[0].model)
        print(learner.__name__, list(model.predict(rows)), model.predict_proba(rows).round(6).tolist())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    proba = saved.model.predict_proba(rows)
    assert np.allclose(proba.sum(axis=1), 1.0) and list(np.argmax(proba, axis=1)) == list(saved.model.predict(rows))
    assert out.stdout.strip().splitlines()[-1] == (
        f"KernelSVCEstimator {list(saved.model.predict(rows))} {proba.round(6).tolist()}"
    )


def test_svm_is_skipped_with_a_note_above_its_row_limit(monkeypatch):
    monkeypatch.setitem(names.ROW_LIMITS, "kernel_svc", (100, "kernel SVC's training time grows with the square of the rows"))
    frame = sample("digits/digits_train.csv", 150)
    job = settings(task="classification", primary_metric="accuracy", target_column="label", max_trials=2,
                   allowed_algorithms=("SVM", "LogisticRegression"), enable_vote_ensemble=False, enable_stack_ensemble=False)
    result = run_automl(frame, job)
    assert result.skipped_algorithms == ["SVM"]
    assert {c.estimator for c in result.candidates} == {"LogisticRegression"}
    assert ("skipped SVM: the local engine runs it on at most 100 training rows (kernel SVC's training time grows "
            "with the square of the rows); this job has 150") in result.notes
    with pytest.raises(CapcError) as err:
        run_automl(frame, replace(job, allowed_algorithms=("SVM",)))
    assert "none of the algorithms this job allows can run locally (SVM)" in err.value.message


def test_svm_learner_probabilities_keep_svcs_ranking_and_survive_a_class_too_rare_to_calibrate():
    from capc.local.automl.learners import KernelSVCEstimator

    frame = sample("digits/digits_train.csv", 200)
    X, y = frame.drop(columns=["label"]), frame["label"].to_numpy()
    calibrated = KernelSVCEstimator(task="multiclass", C=4.0, gamma_factor=1.0, scaling="minmax")
    calibrated.fit(X, y)
    proba = calibrated.predict_proba(X)
    assert np.allclose(proba.sum(axis=1), 1.0)
    svc = calibrated.model.named_steps["svc"].calibrated_classifiers_[0].estimator
    ranking = svc.decision_function(calibrated.model.named_steps["features"].transform(X))
    assert (np.argmax(proba, axis=1) == np.argmax(ranking, axis=1)).all()  # temperature scaling keeps the order
    rare = np.where(np.arange(len(y)) == 0, "rare", np.where(y < 5, "low", "high"))  # one row of class "rare"
    fallback = KernelSVCEstimator(task="multiclass", C=1.0, gamma_factor=1.0, scaling="standard")
    fallback.fit(X, rare)
    proba = fallback.predict_proba(X)
    assert proba.shape == (len(y), 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(fallback.classes_[np.argmax(proba, axis=1)]) == list(fallback.predict(X))


def test_saved_regression_model_signature_accepts_missing_values(housing, tmp_path):
    import mlflow.pyfunc

    frame, job, result = housing
    result.save_mlflow_model(tmp_path / "model")
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    rows = frame.drop(columns=["median_house_value"])
    rows = pd.concat([rows[rows["total_bedrooms"].isna()].head(2), rows.head(3)])
    assert np.allclose(model.predict(rows), result.model.predict(rows))


def test_max_trials_and_exit_score_end_the_search():
    frame = sample("digits/digits_train.csv", 300)
    job = settings(task="classification", primary_metric="accuracy", target_column="label", max_trials=3,
                   allowed_algorithms=("LogisticRegression",), enable_vote_ensemble=False, enable_stack_ensemble=False)
    capped = run_automl(frame, job)
    assert len(capped.candidates) == 3
    assert (capped.end.limit, capped.end.detail) == ("trials", "max_trials 3 reached")
    result = run_automl(frame, replace(job, exit_score=0.0))
    assert len(result.candidates) == 1
    assert result.end.limit == "exit_score" and result.end.detail.startswith("exit_score 0 reached by candidate 0 (LogisticRegression, ")


def test_featurization_off_uses_numeric_columns_as_they_are():
    frame = sample("digits/digits_train.csv", 300)
    job = settings(task="classification", primary_metric="accuracy", target_column="label", max_trials=2,
                   featurization="off", allowed_algorithms=("RandomForest",), enable_vote_ensemble=False,
                   enable_stack_ensemble=False)
    result = run_automl(frame, job)
    assert result.best.estimator == "RandomForest"
    assert result.model.predict(frame.drop(columns=["label"]).head(3)).shape == (3,)


# ------------------------------------------------------------------ bad input


BANK_SETTINGS = dict(task="classification", primary_metric="accuracy", target_column="y")


def test_missing_target_column_is_a_capc_error_naming_it():
    frame = sample("bankmarketing/bankmarketing_train.csv", 50)
    with pytest.raises(CapcError) as err:
        run_automl(frame, settings(**{**BANK_SETTINGS, "target_column": "yy"}))
    assert "target column `yy` is not in the AutoML training data" in err.value.message
    assert err.value.hint == "did you mean `y`?"


def test_one_class_only_is_a_capc_error():
    frame = sample("bankmarketing/bankmarketing_train.csv", 200)
    frame = frame[frame["y"] == "no"]
    with pytest.raises(CapcError, match="holds one class only \\(`no`\\)"):
        run_automl(frame, settings(**BANK_SETTINGS))


def test_empty_frame_and_too_few_rows_are_capc_errors():
    frame = sample("bankmarketing/bankmarketing_train.csv", 50)
    with pytest.raises(CapcError, match="has no rows"):
        run_automl(frame.head(0), settings(**BANK_SETTINGS))
    with pytest.raises(CapcError, match="at least 10 labelled rows"):
        run_automl(frame.head(5), settings(**BANK_SETTINGS))


def test_text_regression_target_is_a_capc_error():
    frame = sample("bankmarketing/bankmarketing_train.csv", 50)
    with pytest.raises(CapcError, match="regression target `job` must be numeric"):
        run_automl(frame, settings(task="regression", primary_metric="r2_score", target_column="job"))


def test_featurization_off_with_text_columns_is_a_capc_error():
    frame = sample("bankmarketing/bankmarketing_train.csv", 50)
    with pytest.raises(CapcError) as err:
        run_automl(frame, settings(**BANK_SETTINGS, featurization="off"))
    assert "featurization is off" in err.value.message and "job" in err.value.message
    assert "featurization to auto" in err.value.hint


def test_only_unrunnable_algorithms_allowed_is_a_capc_error():
    frame = sample("bankmarketing/bankmarketing_train.csv", 50)
    with pytest.raises(CapcError) as err:
        run_automl(frame, settings(**BANK_SETTINGS, allowed_algorithms=("DecisionTree", "MultinomialNaiveBayes")))
    assert "none of the algorithms this job allows can run locally (DecisionTree, MultinomialNaiveBayes)" in err.value.message
    assert "LightGBM" in err.value.hint


def test_the_final_refit_is_bounded_for_learners_that_stop_on_a_deadline():
    """FLAML lifts every time limit for its final refit; capc gives LightGBM/XGBoost ones what the job has left,
    at least one validation fold's training time, and leaves the others (which cannot take a budget) alone."""
    import time
    from types import SimpleNamespace

    from capc.local.automl.search import _bounded_refit

    classes = {"xgboost": SimpleNamespace(HAS_CALLBACK=True), "rf": SimpleNamespace(HAS_CALLBACK=False)}
    state = SimpleNamespace(time_budget=-1, time_from_start=0.0, learner_classes={},
                            task=SimpleNamespace(estimator_class_from_str=classes.__getitem__))
    automl = SimpleNamespace(_state=state, _start_time_flag=time.time() - 50,
                             _search_states={"xgboost": SimpleNamespace(best_config_train_time=100.0), "rf": SimpleNamespace(best_config_train_time=100.0)})
    budgets = []

    def train(estimator, config, sample_size=None, is_retrain=False):
        budgets.append(None if state.time_budget < 0 else state.time_budget - state.time_from_start)
        state.time_budget = -1

    bounded = _bounded_refit(automl, train, deadline=time.monotonic() + 3, folds=5)
    bounded("xgboost", {}, is_retrain=False)  # a search trial: FLAML's own budget
    bounded("rf", {}, is_retrain=True)
    bounded("xgboost", {}, is_retrain=True)  # one fold took 100 / 5 s: more than the 3 s left
    assert budgets[:2] == [None, None] and budgets[2] == pytest.approx(20.0, abs=0.5)
    bounded = _bounded_refit(automl, train, deadline=time.monotonic() + 60, folds=5)
    bounded("xgboost", {}, is_retrain=True)
    assert budgets[3] == pytest.approx(60.0, abs=1.0)
