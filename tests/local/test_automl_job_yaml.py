"""`capc submit JOB.yml` for a hand-written Azure ML `type: automl` job: job YAMLs in the shapes of Azure's AutoML
YAML reference and its bank-marketing example, MLTable folders built here from a few thousand rows of the shared
bank-marketing and housing files, tiny budgets. Fast tests read jobs and tables; the `slow` ones train.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from capc.errors import CapcError
from capc.jobfolder.automl_yaml import read_automl_job
from capc.jobfolder.job_yaml import load_job_yaml
from capc.jobfolder.mltable import read_table

SHARED = Path("/work/shared/data")
BANK = SHARED / "bankmarketing" / "bankmarketing_train.csv"
HOUSING = SHARED / "housing" / "housing.csv"
DELIMITED = {"read_delimited": {"delimiter": ",", "encoding": "ascii"}}


def mltable(folder: Path, frame: pd.DataFrame, *steps: dict, file: str = "data.csv") -> Path:
    """An MLTable folder: the rows as a CSV file next to an MLTable that reads it (then `steps`)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / file, index=False)
    table = {"paths": [{"file": f"./{file}"}], "transformations": [DELIMITED, *steps]}
    (folder / "MLTable").write_text(yaml.safe_dump(table, sort_keys=False))
    return folder


def job_file(folder: Path, text: str, name: str = "job.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def bank(workdir: Path) -> Path:
    """training / validation / test MLTable folders of 3,000 bank-marketing rows, beside where the job goes."""
    rows = pd.read_csv(BANK).sample(3000, random_state=1)
    mltable(workdir / "training-mltable-folder", rows.iloc[:2000], file="bank_marketing_train_data.csv")
    mltable(workdir / "validation-mltable-folder", rows.iloc[2000:2500], file="bank_marketing_validation_data.csv")
    mltable(workdir / "test-mltable-folder", rows.iloc[2500:], file="bank_marketing_test_data.csv")
    return workdir


BANK_JOB = """\
    $schema: https://azuremlschemas.azureedge.net/latest/autoMLJob.schema.json
    type: automl
    experiment_name: bank-automl
    description: A classification job using bank marketing
    compute: azureml:cpu-cluster
    task: classification
    log_verbosity: debug
    primary_metric: accuracy
    target_column_name: "y"
    training_data:
      path: ./training-mltable-folder
      type: mltable
    validation_data:
      path: ./validation-mltable-folder
      type: mltable
    test_data:
      path: ./test-mltable-folder
      type: mltable
    limits:
      timeout_minutes: 180
      max_trials: 6
      max_concurrent_trials: 2
      trial_timeout_minutes: 20
      enable_early_termination: true
    featurization:
      mode: custom
      column_name_and_types:
        campaign: Categorical
      transformer_params:
        imputer:
          - fields: ["job"]
            parameters:
              strategy: most_frequent
      blocked_transformers:
        - WordEmbedding
    training:
      enable_model_explainability: true
      enable_stack_ensemble: false
      allowed_training_algorithms:
        - light_gbm
        - logistic_regression
"""


def read(path: Path, *overrides: str):
    return read_automl_job(load_job_yaml(path, list(overrides)))


# ---------------------------------------------------------------- reading the job (fast)


def test_documented_job_is_read_with_its_tables_and_a_note_per_unhonoured_key(bank):
    automl = read(job_file(bank, BANK_JOB))
    assert automl.task == "classification" and automl.target == "y"
    assert automl.tables == {role: (bank / f"{role.split('_')[0]}-mltable-folder").resolve() for role in ("training_data", "validation_data", "test_data")}
    assert automl.column_types == {"campaign": "Categorical"}
    notes = "\n".join(automl.notes)
    assert "Azure-side settings with no local effect: compute, log_verbosity" in notes
    for key in ("training.enable_model_explainability", "featurization.blocked_transformers"):
        assert f"{key} is not honoured locally" in notes
    assert automl.imputers == {"job": ("most_frequent", None)} and "transformer_params" not in notes
    assert "enable_stack_ensemble" not in notes  # honoured: no note


@pytest.mark.parametrize(("task", "says"), [
    ("image_object_detection", "an object detector"),
    ("image_instance_segmentation", "a segmentation model"),
    ("text_classification", "a pretrained language model"),
    ("text_ner", "a token tagger"),
    ("image_classification_multilabel", "a multi-label image learner"),
])
def test_tasks_the_local_engine_lacks_are_refused_naming_what_is_missing(bank, task, says):
    path = job_file(bank, BANK_JOB.replace("task: classification", f"task: {task}"))
    with pytest.raises(CapcError, match=f"`{task}` cannot run locally: it needs .*{says}"):
        read(path)


def test_remote_training_data_is_refused_with_the_set_that_points_it_here(bank):
    path = job_file(bank, BANK_JOB)
    with pytest.raises(CapcError, match=r"never downloads data.*--set training_data\.path=FOLDER.*--data-map FILE"):
        read(path, "training_data.path=azureml:bank-train:1")


def test_data_map_binds_remote_tables(bank):
    from capc.local.data_map import bind_job_data, read_data_map

    uri = "azureml://datastores/workspaceblobstore/paths/bank/training/"
    (bank / "map.yml").write_text(f"{uri}: ./training-mltable-folder\n")
    job = bind_job_data(load_job_yaml(job_file(bank, BANK_JOB.replace("./training-mltable-folder", uri))), read_data_map(bank / "map.yml"))
    assert read_automl_job(job).tables["training_data"] == (bank / "training-mltable-folder").resolve()


def test_set_table_path_is_relative_to_the_working_directory(bank, monkeypatch):
    path = job_file(bank, BANK_JOB)
    monkeypatch.chdir(bank / "test-mltable-folder")
    automl = read(path, "training_data.path=../validation-mltable-folder")
    assert automl.tables["training_data"] == (bank / "validation-mltable-folder").resolve()


def test_unknown_key_and_conflicting_validation_are_refused(bank):
    with pytest.raises(CapcError, match=r"`limits\.max_trial` is not a key.*limits\.max_trials"):
        read(job_file(bank, BANK_JOB.replace("max_trials: 6", "max_trial: 6")))
    with pytest.raises(CapcError, match="validation_data is given, so validation_data_size and n_cross_validations must not be"):
        read(job_file(bank, BANK_JOB + "    n_cross_validations: 5\n"))


def test_bare_featurization_off_is_off(bank):
    from capc.local.automl_job import _settings

    automl = read(job_file(bank, BANK_JOB.replace("mode: custom", "mode: off")))
    assert _settings(automl).featurization == "off"


def test_mltable_transformations_are_applied_as_azure_reads_them(workdir):
    frame = pd.DataFrame({"a": ["1", "2", "x", "4"], "flag": ["yes", "no", "yes", "no"], "drop_me": [1, 2, 3, 4], "y": [0, 1, 0, 1]})
    folder = mltable(workdir / "t", frame,
                     {"drop_columns": ["drop_me"]},
                     {"convert_column_types": [{"columns": "a", "column_type": "float"},
                                               {"columns": ["flag"], "column_type": {"boolean": {"true_values": ["yes"], "false_values": ["no"]}}}]},
                     {"skip": 1}, {"take": 2})
    table = read_table(folder)
    assert list(table.columns) == ["a", "flag", "y"]
    assert table["a"].isna().tolist() == [False, True] and table["flag"].tolist() == [False, True]


def test_mltable_pattern_reads_every_matching_file_and_parquet(workdir):
    folder = workdir / "parts"
    folder.mkdir()
    for i in range(3):
        pd.DataFrame({"a": [i, i], "y": [0, 1]}).to_parquet(folder / f"part-{i}.parquet")
    (folder / "MLTable").write_text(yaml.safe_dump({"paths": [{"pattern": "./part-*.parquet"}], "transformations": ["read_parquet"]}))
    assert read_table(folder)["a"].tolist() == [0, 0, 1, 1, 2, 2]


def test_register_is_for_automl_job_yamls_only(bank):
    from click.testing import CliRunner

    from capc.cli import cli

    command = job_file(bank, "type: command\ncommand: echo hi\n", "command.yml")
    result = CliRunner().invoke(cli, ["submit", str(command), "--register", "bank-model"])
    assert result.exit_code == 1 and "--register names the model of an AutoML job" in result.output
    spec = job_file(bank, "name: x\n", "spec.yaml")
    result = CliRunner().invoke(cli, ["submit", str(spec), "--register", "bank-model"])
    assert result.exit_code == 1 and "a spec registers its winner under its own name" in result.output


def test_mltable_filter_is_refused_not_skipped(workdir):
    folder = mltable(workdir / "t", pd.DataFrame({"a": [1, 2]}), {"filter": "col('a') > 1"})
    with pytest.raises(CapcError, match="the transformation `filter` is not one the local MLTable reader runs"):
        read_table(folder)


IMAGE_JOB = """\
    type: automl
    experiment_name: mri-images
    compute: azureml:gpu-cluster
    task: image_classification
    primary_metric: accuracy
    target_column_name: label
    training_data: {path: ./images-mltable, type: mltable}
    validation_data_size: 0.25
    limits: {timeout_minutes: 30, max_trials: 2, max_concurrent_trials: 1}
    training_parameters: {early_stopping: true, number_of_epochs: 15}
    sweep:
      sampling_algorithm: random
      early_termination: {type: bandit, evaluation_interval: 2, slack_factor: 0.2, delay_evaluation: 6}
    search_space:
      - model_name: {type: choice, values: [vitb16r224]}
"""


def images_mltable(folder: Path, per_class: int = 6) -> Path:
    """A JSONL MLTable folder as Azure's image examples have it: images/<label>/<file>, one line per image."""
    import json
    import shutil

    lines = []
    for label in ("no", "yes"):
        (folder / "images" / label).mkdir(parents=True)
        for image in sorted((SHARED / "mri" / label).iterdir())[:per_class]:
            shutil.copy(image, folder / "images" / label / image.name)
            lines.append(json.dumps({"image_url": f"images/{label}/{image.name}", "label": label}))
    (folder / "train_annotations.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "MLTable").write_text(yaml.safe_dump({"paths": [{"file": "./train_annotations.jsonl"}], "transformations": [
        {"read_json_lines": {"encoding": "utf8", "invalid_lines": "error"}},
        {"convert_column_types": [{"columns": "image_url", "column_type": "stream_info"}]}]}))
    return folder


def test_image_job_is_compiled_into_a_folder_the_local_image_engine_runs(workdir):
    from capc.local.automl_images import image_job_folder, image_notes
    from capc.jobfolder.data import image_root_from_mltable

    images_mltable(workdir / "images-mltable")
    automl = read(job_file(workdir, IMAGE_JOB))
    root = image_root_from_mltable(automl.tables["training_data"])
    assert root == (workdir / "images-mltable" / "images").resolve()
    folder = image_job_folder(automl, "mri-images", root)
    assert "# capc-trial: keras_cnn" in (folder / "src" / "train.py").read_text()
    assert yaml.safe_load((folder / "automl_job.yml").read_text())["limits"]["max_trials"] == 2
    assert "training_parameters, search_space not honoured locally" in "\n".join(image_notes(automl))


def test_register_name_follows_the_spec_name_rule(bank):
    from capc.local.automl_job import run_automl_job_yaml

    with pytest.raises(CapcError, match="--register Bank_Model: not a model name"):
        run_automl_job_yaml(load_job_yaml(job_file(bank, BANK_JOB)), register="Bank_Model")
    assert not (bank / "home" / "runs").exists()  # refused before any run


# ---------------------------------------------------------------- running (slow: each trains for seconds)


@pytest.mark.slow
def test_classification_job_with_validation_and_test_data_registers_and_predicts(bank, capc_home):
    """The documented shape, 20 s: test run stored, model where Azure writes it, registered, predicted."""
    import mlflow.pyfunc

    from capc.local.automl_job import run_automl_job_yaml
    from capc.serve.batch import score_csv
    from capc.state import registry, tracking

    path = job_file(bank, BANK_JOB)
    result = run_automl_job_yaml(load_job_yaml(path, ["limits.timeout_minutes=0.3"]), register="bank-automl")
    assert result.status == "completed" and result.value > 0.85
    assert result.test_rows == 500 and result.test_metrics["accuracy"] > 0.85
    assert {"AUC_weighted", "f1_score_macro", "log_loss", "norm_macro_recall"} <= set(result.test_metrics)
    predictions = pd.read_csv(result.test_predictions)
    assert list(predictions.columns) == ["y", "prediction", "probability_no", "probability_yes"] and len(predictions) == 500
    assert result.model_dir.endswith(f"{result.best_run_id}/outputs/mlflow-model")
    assert (Path(result.best_model) / "MLmodel").is_file()
    client = tracking.client()
    assert [a.path for a in client.list_artifacts(result.best_run_id, "outputs")] == ["outputs/mlflow-model"]
    test_runs = client.search_runs([client.get_run(result.automl_run_id).info.experiment_id], "tags.`capc.kind` = 'test'")
    assert test_runs[0].data.metrics["accuracy"] == pytest.approx(result.test_metrics["accuracy"])
    ended = result.to_dict()["searches"]["automl"]["stop_reason"]  # why the search ended: the result and the run's tags
    assert ended["limit"] == client.get_run(result.automl_run_id).data.tags[tracking.STOP_LIMIT_TAG] and ended["detail"]
    model = registry.get("bank-automl")
    assert (model.task, model.metric, model.source) == ("classification", "accuracy", "automl")
    assert (Path(model.job_dir) / "score.py").is_file() and (Path(model.job_dir) / "sample_request.json").is_file()
    rows = pd.read_csv(bank / "test-mltable-folder" / "bank_marketing_test_data.csv")
    rows.drop(columns=["y"]).to_csv(bank / "score.csv", index=False)
    score_csv(model.model_dir, Path(model.job_dir), bank / "score.csv", bank / "scored.csv")
    scored = pd.read_csv(bank / "scored.csv")
    assert (scored["prediction"] == predictions["prediction"]).all()
    loaded = mlflow.pyfunc.load_model(result.best_model)
    features = rows.drop(columns=["y"]).astype({"campaign": str})  # its signature: campaign is a category (Categorical)
    assert (loaded.predict(features) == predictions["prediction"].to_numpy()).all()
    from capc.report import write_report

    written = write_report("bank-automl", bank / "report.html")
    page = (bank / "report.html").read_text()
    assert written.figures >= 3 and "500 rows of the job&#39;s validation_data table" in page
    assert not [n for n in written.notes if "rebuilt from another version" in n]


@pytest.mark.slow
def test_regression_job_with_cross_validation_and_test_data_size(workdir, capc_home):
    from capc.local.automl_job import run_automl_job_yaml

    rows = pd.read_csv(HOUSING).sample(2000, random_state=2)
    mltable(workdir / "housing-mltable", rows, {"drop_columns": ["longitude"]})
    path = job_file(workdir, """\
        type: automl
        experiment_name: housing-automl
        task: regression
        primary_metric: normalized_mean_absolute_error
        target_column_name: median_house_value
        training_data: {path: ./housing-mltable, type: mltable}
        n_cross_validations: 3
        test_data_size: 0.2
        limits: {timeout_minutes: 5, max_trials: 5}
        training:
          allowed_training_algorithms: [light_gbm, random_forest]
          enable_vote_ensemble: false
          enable_stack_ensemble: false
        featurization:
          mode: custom
          transformer_params:
            imputer:
              - fields: [total_bedrooms]
                parameters: {strategy: constant, fill_value: 500}
    """)
    notes: list[str] = []
    result = run_automl_job_yaml(load_job_yaml(path, ["limits.timeout_minutes=0.3"]), say=notes.append)
    assert result.status == "completed" and 0 < result.value < 0.2
    assert result.test_rows == 400
    assert {"normalized_mean_absolute_error", "r2_score", "root_mean_squared_error"} <= set(result.test_metrics)
    assert any("3-fold cross-validation" in n for n in result.notes)
    assert result.best.split("-")[0] in ("LightGBM", "RandomForest")
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(result.best_model)  # the imputer travels with the model
    assert model.fill_values == {"total_bedrooms": 500}
    row = rows.drop(columns=["median_house_value", "longitude"]).head(1)
    gap, filled = row.assign(total_bedrooms=float("nan")), row.assign(total_bedrooms=500.0)
    assert model.predict(gap) == pytest.approx(model.predict(filled))


@pytest.mark.slow
def test_image_classification_job_runs_on_the_local_image_engine_and_registers(workdir, capc_home):
    """Minutes: one keras_cnn configuration on 12 MRI images."""
    from capc.local.automl_job import run_automl_job_yaml
    from capc.state import registry

    images_mltable(workdir / "images-mltable")
    path = job_file(workdir, IMAGE_JOB)
    result = run_automl_job_yaml(load_job_yaml(path, ["limits.max_trials=1", "limits.timeout_minutes=8"]), register="mri-images")
    assert result.status == "completed" and result.value is not None
    assert (Path(result.best_model) / "MLmodel").is_file()
    model = registry.get("mri-images")
    assert model.task == "image_classification" and (Path(model.job_dir) / "score.py").is_file()


class _StopAfter:
    """A live display that presses Ctrl-C when the n-th candidate is reported (inside the search, as a real one lands)."""

    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def automl_started(self, budget_s):
        pass

    def automl_candidate(self, candidate):
        self.seen += 1
        if self.seen == self.n:
            raise KeyboardInterrupt

    def automl_finished(self, result):
        pass


@pytest.mark.slow
def test_interrupted_job_resumes_from_each_learners_best_with_the_budget_left(bank, capc_home):
    from capc.local.automl_job import run_automl_job_yaml
    from capc.state import tracking

    path = job_file(bank, BANK_JOB.replace("    validation_data:\n      path: ./validation-mltable-folder\n      type: mltable\n", ""))
    job = load_job_yaml(path, ["limits.timeout_minutes=0.5", "n_cross_validations=3"])
    stopped = run_automl_job_yaml(job, progress=_StopAfter(3))
    assert stopped.status == "interrupted" and stopped.value is None
    said: list[str] = []
    resumed = run_automl_job_yaml(job, resume=True, say=said.append)
    assert resumed.status == "completed"
    # Ctrl-C lands on the 3rd candidate reported; under load one of them may be a failed (timed-out) trial.
    finished = next(int(m.group(1)) for m in (re.search(rf"continuing run {stopped.submit_run_id[:12]} \((\d) candidates finished\)", s)
                                              for s in said) if m)
    assert finished in (2, 3) and any(f"{6 - finished} trials left" in s for s in said)
    assert any("search starts from the best configuration of" in n for n in resumed.notes)
    client = tracking.client()
    assert tracking.status_of(client.get_run(stopped.submit_run_id)) == "interrupted"
    again: list[str] = []
    run_automl_job_yaml(job, resume=True, say=again.append)
    assert any("was not interrupted, so it runs from the start" in s for s in again)


@pytest.mark.slow
def test_pipeline_node_runs_with_bound_tables_and_writes_best_model(bank, capc_home):
    """What a hand-written pipeline's runner calls for an AutoML node (its inputs bound to local MLTable folders)."""
    import mlflow.pyfunc

    from capc.local.automl_job import run_automl_node
    from capc.state import tracking

    node = yaml.safe_load(textwrap.dedent("""\
        type: automl
        task: classification
        primary_metric: AUC_weighted
        target_column_name: y
        training_data: ${{parent.inputs.bank_train}}
        test_data: ${{parent.inputs.bank_test}}
        n_cross_validations: 3
        limits: {timeout_minutes: 0.3, max_trials: 3}
        training: {allowed_training_algorithms: [light_gbm, logistic_regression], enable_stack_ensemble: false}
        outputs:
          best_model: {type: mlflow_model}
    """))
    client = tracking.client()
    exp_id = tracking.experiment_id(client, "pipeline-test")
    parent = tracking.start_run(client, exp_id, "automl_node", "step")
    tables = {"training_data": bank / "training-mltable-folder", "test_data": bank / "test-mltable-folder"}
    result = run_automl_node(node, bank, tables, bank / "outputs" / "best_model", experiment_id=exp_id, parent_run_id=parent,
                             name="classify")
    assert result.status == "completed" and result.metric == "AUC_weighted" and result.value > 0.8
    assert result.best_model == str(bank / "outputs" / "best_model") and result.test_rows == 500
    assert mlflow.pyfunc.load_model(result.best_model).predict(pd.read_csv(bank / "test-mltable-folder" / "bank_marketing_test_data.csv").drop(columns=["y"])).shape == (500,)
    assert client.get_run(result.automl_run_id).data.tags[tracking.PARENT_TAG] == parent
