"""Contract: every artifact `capc build` renders is what Azure ML's own SDK (azure-ai-ml 1.35.2) accepts.

Each YAML is loaded with the SDK's loader (load_job, load_online_endpoint, ...) and these tests check the entities it
makes; jobs are also converted to their REST form as `az ml job create` would (it must not fail; the REST bodies
themselves are the Azure stage's: tests/azure/test_azure_dry_run.py pins them). Every generated .py compiles,
hostile values come back literally, and rendering is deterministic.
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from render_specs import BASE_SPECS, base_spec, load, place_data, render_to
from repo import REFERENCE_SPECS, SPECS

SDK_LOADERS = {
    "automl_job.yml": "load_job",
    "sweep_job.yml": "load_job",
    "pipeline_job.yml": "load_job",
    "endpoint.yml": "load_online_endpoint",
    "deployment.yml": "load_online_deployment",
    "batch_endpoint.yml": "load_batch_endpoint",
    "batch_deployment.yml": "load_batch_deployment",
    "environment.yml": "load_environment",
    "schedule.yml": "load_schedule",
    "sweep_trial.yml": "load_component",
}


def sdk_loader(rel: str) -> str | None:
    """The SDK loader of an artifact; a conditional sweep's sweep_<family>.yml is a job, sweep_trial_<family>.yml a component."""
    if rel in SDK_LOADERS:
        return SDK_LOADERS[rel]
    if rel.startswith("sweep_trial_") and rel.endswith(".yml"):
        return "load_component"
    if rel.startswith("sweep_") and rel.endswith(".yml"):
        return "load_job"
    return None


def load_with_sdk(path: Path):
    import azure.ai.ml as ml
    from azure.ai.ml.entities._load_functions import load_schedule  # not re-exported by azure.ai.ml 1.35

    name = sdk_loader(path.name)
    loader = load_schedule if name == "load_schedule" else getattr(ml, name)
    entity = loader(source=path)
    if name == "load_job" or path.name == "schedule.yml":
        entity._to_rest_object()  # what `az ml ... create` sends: fails on anything the service model rejects
    elif path.name == "batch_deployment.yml":
        entity._to_rest_object(location="westeurope")
    elif path.name == "batch_endpoint.yml":
        entity._to_rest_batch_endpoint(location="westeurope")
    return entity


def check_job_folder(job_dir: Path, files: dict[str, bytes]) -> dict:
    """Load every artifact of one build; returns the SDK entities by file name."""
    entities = {}
    for rel in files:
        path = job_dir / rel
        if sdk_loader(rel):
            entities[rel] = load_with_sdk(path)
        elif rel.endswith(".py"):
            compile(path.read_bytes(), str(path), "exec")
        elif rel.endswith(".json"):
            json.loads(path.read_text(encoding="utf-8"))
        elif rel.endswith(".jsonl"):
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            assert rows and all((path.parent / r["image_url"]).is_file() for r in rows)
        else:
            yaml.safe_load(path.read_text(encoding="utf-8"))
    table = yaml.safe_load((job_dir / "data" / "MLTable").read_text(encoding="utf-8"))
    source = table["paths"][0]["file"]
    assert not os.path.isabs(source) and "\\" not in source
    if not source.startswith("azureml:"):
        assert (job_dir / "data" / source).exists(), source
    return entities


# ---------------------------------------------------------------- reference specs and the base specs


@pytest.mark.parametrize("spec_path", REFERENCE_SPECS, ids=[p.stem for p in REFERENCE_SPECS])
def test_reference_specs_load_with_azure_sdk(tmp_path, spec_path):
    from capc.spec import load_spec

    spec = load_spec(spec_path)
    files = render_to(spec, tmp_path / "generated")
    entities = check_job_folder(tmp_path / "generated" / spec.name, files)
    assert {"automl_job.yml", "endpoint.yml", "deployment.yml", "environment.yml", "batch_endpoint.yml", "batch_deployment.yml"} <= set(entities)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The four base specs (one per use case) rendered once: name -> (spec, job dir, files, SDK entities)."""
    out = {}
    for which in BASE_SPECS:
        folder = tmp_path_factory.mktemp(which)
        place_data(folder, which)
        spec = load(folder, base_spec(which))
        files = render_to(spec, folder / "generated")
        job_dir = folder / "generated" / spec.name
        out[which] = (spec, job_dir, files, check_job_folder(job_dir, files))
    return out


def test_automl_settings_reach_the_sdk(built):
    from azure.ai.ml.automl import ClassificationJob, RegressionJob

    spec, _, _, entities = built["bank"]
    job = entities["automl_job.yml"]
    assert isinstance(job, ClassificationJob)
    assert job.primary_metric.lower() == "accuracy" and job.target_column_name == "y"
    assert job.n_cross_validations == 3
    allowed = [str(a.value if hasattr(a, "value") else a) for a in job.training.allowed_training_algorithms]
    assert allowed == ["LightGBM", "XGBoostClassifier", "RandomForest"]
    assert job.training.enable_stack_ensemble is True and job.training.enable_vote_ensemble is True
    assert job.limits.timeout_minutes == 60 and job.limits.max_trials == 40
    assert job.featurization.mode == "auto"
    assert job.training_data.type == "mltable" and job.training_data.path.endswith("data")
    # The REST body azure-ai-ml makes of it (primaryMetric "Accuracy", ...) is pinned by tests/azure's dry-run goldens.

    housing = built["housing"][3]["automl_job.yml"]
    assert isinstance(housing, RegressionJob)
    blocked = [str(a.value if hasattr(a, "value") else a) for a in housing.training.blocked_training_algorithms]
    assert blocked == ["KNN"]
    assert housing.validation_data_size == 0.2


def test_sweep_job_carries_search_space_objective_policy_and_limits(built):
    from azure.ai.ml.sweep import Choice, MedianStoppingPolicy, Uniform

    spec, job_dir, _, entities = built["digits"]
    job = entities["sweep_job.yml"]
    assert isinstance(job.search_space["C"], Uniform) and (job.search_space["C"].min_value, job.search_space["C"].max_value) == (0.1, 10)
    assert isinstance(job.search_space["max_iter"], Choice) and job.search_space["max_iter"].values == [50, 100, 200, 300]
    assert job.objective.goal == "maximize" and job.objective.primary_metric == "accuracy"
    assert isinstance(job.early_termination, MedianStoppingPolicy)
    assert (job.early_termination.evaluation_interval, job.early_termination.delay_evaluation) == (1, 5)
    assert job.limits.max_total_trials == 8 and job.limits.timeout == 3600 and job.limits.trial_timeout == 1200
    assert job.trial.command == (
        "python train.py --data ${{inputs.training_data}} --target label --metric accuracy "
        "--C ${{search_space.C}} --max_iter ${{search_space.max_iter}}"
    )
    assert job.inputs["training_data"].type == "uri_file"
    assert (job_dir / job.inputs["training_data"].path).resolve() == (spec.path.parent / "data" / "digits.csv").resolve()

    housing = built["housing"][3]["sweep_job.yml"]
    assert housing.objective.goal == "minimize" and housing.objective.primary_metric == "normalized_mean_absolute_error"
    assert housing.early_termination.slack_factor == 0.15
    assert housing.search_space["learning_rate"].type == "loguniform"

    bank = built["bank"][3]["sweep_job.yml"]
    assert bank.sampling_algorithm.type == "random" if hasattr(bank.sampling_algorithm, "type") else bank.sampling_algorithm == "random"
    assert bank.early_termination.truncation_percentage == 20


def test_image_classification_job_has_its_own_shape(built):
    from azure.ai.ml.automl import ImageClassificationJob

    spec, job_dir, files, entities = built["mri"]
    job = entities["automl_job.yml"]
    assert isinstance(job, ImageClassificationJob)
    assert job.compute.removeprefix("azureml:") == "gpu-cluster"
    assert job.limits.max_trials == 4
    assert job.training_parameters.early_stopping is True and job.training_parameters.number_of_epochs == 15
    assert job.sweep.sampling_algorithm == "random" or job.sweep.sampling_algorithm.type == "random"
    subspace = job.search_space[0]
    assert subspace.model_name.values == ["resnet50", "vitb16r224"]
    assert (subspace.learning_rate.min_value, subspace.learning_rate.max_value) == (0.001, 0.01)
    rows = [json.loads(line) for line in files["data/images.jsonl"].decode().splitlines()]
    assert rows == sorted(rows, key=lambda r: (r["label"], r["image_url"]))
    assert {r["label"] for r in rows} == {"no", "yes"} and len(rows) == 24
    sweep = entities["sweep_job.yml"]
    assert sweep.inputs["training_data"].type == "uri_folder"
    assert sweep.early_termination.slack_amount == 0.1


def test_pipeline_runs_automl_and_sweep_then_selects(built):
    spec, job_dir, files, entities = built["bank"]
    pipeline = entities["pipeline_job.yml"]
    assert list(pipeline.jobs) == ["automl", "sweep", "select_best"]
    sweep = pipeline.jobs["sweep"]
    assert sweep.objective.primary_metric == "accuracy" and set(sweep.search_space) == {"n_estimators", "learning_rate"}
    select = pipeline.jobs["select_best"]
    argv = shlex.split(select.command)
    assert argv[argv.index("--goal") + 1] == "maximize" and argv[argv.index("--model_name") + 1] == "bank"
    component = entities["sweep_trial.yml"]
    assert set(component.inputs) == {"training_data", "n_estimators", "learning_rate"}
    assert component.inputs["n_estimators"].type == "integer" and component.inputs["learning_rate"].type == "number"
    assert "--output_dir ${{outputs.model_output}}" in component.command
    schedule = entities["schedule.yml"]
    assert schedule.trigger.expression == "0 3 1 */6 *" and schedule.name == "bank-retrain"
    assert "schedule.yml" not in built["digits"][2]  # no schedule in the spec, none rendered


def test_endpoint_deployment_and_environment(built):
    spec, job_dir, files, entities = built["bank"]
    endpoint, deployment = entities["endpoint.yml"], entities["deployment.yml"]
    assert endpoint.name == "bank-endpoint" and endpoint.auth_mode == "key"
    assert deployment.endpoint_name == "bank-endpoint"
    assert deployment.request_settings.request_timeout_ms == 3000
    assert deployment.request_settings.max_concurrent_requests_per_instance == 2
    assert deployment.environment_variables["WORKER_COUNT"] == "2"
    assert deployment.app_insights_enabled is True
    assert deployment.code_configuration.scoring_script == "score.py"
    assert deployment.model.removeprefix("azureml:") == "bank@latest"
    environment = entities["environment.yml"]
    assert environment.name == "bank-env"
    pip = environment.conda_file["dependencies"][-1]["pip"]
    assert "lightgbm==4.7.0" in pip and "azureml-inference-server-http==1.5.1" in pip
    # Jobs on Azure log through azureml-mlflow, which takes mlflow-skinny <= 3.15.0.
    assert "azureml-mlflow==1.62.0.post6" in pip and "mlflow-skinny==3.15.0" in pip
    assert not any(p.startswith("mlflow==") for p in pip)
    keras_pip = built["housing"][3]["environment.yml"].conda_file["dependencies"][-1]["pip"]
    assert "keras==3.15.0" in keras_pip and "torch==2.13.0" in keras_pip


@pytest.mark.parametrize("spec_path", REFERENCE_SPECS, ids=[p.stem for p in REFERENCE_SPECS])
def test_batch_endpoint_and_mlflow_model_deployment(tmp_path, spec_path):
    from azure.ai.ml.entities import BatchEndpoint, ModelBatchDeployment

    from capc.spec import load_spec

    spec = load_spec(spec_path)
    files = render_to(spec, tmp_path / "generated")
    job_dir = tmp_path / "generated" / spec.name
    endpoint = load_with_sdk(job_dir / "batch_endpoint.yml")
    deployment = load_with_sdk(job_dir / "batch_deployment.yml")
    assert isinstance(endpoint, BatchEndpoint) and isinstance(deployment, ModelBatchDeployment)
    assert endpoint.name == deployment.endpoint_name == f"{spec.name}-batch"
    assert endpoint.name != load_with_sdk(job_dir / "endpoint.yml").name  # one name space for online and batch
    assert endpoint.auth_mode == "aad_token" and endpoint.description == spec.data["description"]
    rest_endpoint = endpoint._to_rest_batch_endpoint(location="westeurope")
    assert rest_endpoint.properties.auth_mode.lower() == "aadtoken"  # the SDK sends "aadToken" for the enum AADToken
    # An MLflow model deployment: Azure generates the scoring script and the environment.
    assert deployment.code_configuration is None and deployment.environment is None
    assert deployment.model.removeprefix("azureml:") == f"{spec.name}@latest"
    assert deployment.compute.removeprefix("azureml:") == spec.data["compute"]["name"]
    assert deployment.resources.instance_count == spec.data["compute"]["max_instances"]
    rest = deployment._to_rest_object(location="westeurope").properties
    assert rest.output_action == "AppendRow" and rest.output_file_name == "predictions.csv"
    assert rest.mini_batch_size == 10 and rest.error_threshold == -1 and rest.logging_level == "info"
    assert (rest.retry_settings.max_retries, rest.retry_settings.timeout) == (3, timedelta(minutes=5))
    assert "batch_deployment.yml" in files and b"scoring_script" not in files["batch_deployment.yml"]


def test_batch_endpoint_name_of_a_long_spec_name_fits_azure(tmp_path):
    from azure.ai.ml.constants._endpoint import EndpointConfigurations

    place_data(tmp_path, "digits")
    name = "a" * 25 + "-bcdef"  # 31 characters: "-batch" appended would make 37
    spec = load(tmp_path, base_spec("digits", name=name))
    render_to(spec, tmp_path / "generated")
    endpoint = load_with_sdk(tmp_path / "generated" / name / "batch_endpoint.yml")
    assert endpoint.name == "a" * 25 + "-batch"
    assert EndpointConfigurations.MIN_NAME_LENGTH <= len(endpoint.name) <= EndpointConfigurations.MAX_NAME_LENGTH


def test_sample_request_rows_are_typed_and_exclude_target_and_drops(tmp_path):
    place_data(tmp_path, "bank")
    spec = load(tmp_path, base_spec("bank", dataset__drop=["duration", "cons.conf.idx"]))
    files = render_to(spec, tmp_path / "generated")
    rows = json.loads(files["sample_request.json"])["data"]
    assert len(rows) == 2
    assert "y" not in rows[0] and "duration" not in rows[0] and "cons.conf.idx" not in rows[0]
    assert rows[0]["age"] == 26 and isinstance(rows[0]["age"], int)
    assert rows[0]["cons.price.idx"] == pytest.approx(93.918) and rows[0]["job"] == "blue-collar"
    table = yaml.safe_load(files["data/MLTable"])
    assert table["transformations"][-1] == {"drop_columns": ["duration", "cons.conf.idx"]}
    assert "DROP_COLUMNS = ['duration', 'cons.conf.idx']" in files["src/train.py"].decode()


# ---------------------------------------------------------------- hostile and awkward values

HOSTILE_DESCRIPTION = (
    'He said "hi" & left: {{ danger }} {% raw %} ${{inputs.training_data}} ${{ search_space.C }}\n'
    "second line\\n\ttab 'single' # not a comment: [x] {y}\u2028 \u00e9 \U0001f600 \x85 end"
)
HOSTILE_CSV = 'cons.conf.idx,two words,it\'s,"say ""hi""",y\n1.5,a,3,q,yes\n2.5,b,,r,no\n-0.5,,7,s,yes\n'


def hostile_spec(tmp_path: Path, target: str = "y", **sweep):
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "weird name.csv").write_text(HOSTILE_CSV, encoding="utf-8")
    return load(tmp_path, {
        "name": "hostile",
        "description": HOSTILE_DESCRIPTION,
        "dataset": {"path": "data/weird name.csv", "format": "csv", "target": target, "drop": ["it's"]},
        "task": "classification",
        "metric": "accuracy",
        "automl": {"exit_score": 0.95},
        "sweep": sweep or {"model": "logistic_regression", "search_space": {"C": "uniform(0.1, 10)", "tol": "loguniform(-12, -9)"}},
        "environment": {"pip": ["requests>=2; python_version > \"3.8\""]},
    })


def test_hostile_values_yield_valid_files_holding_the_literal_values(tmp_path):
    spec = hostile_spec(tmp_path)
    files = render_to(spec, tmp_path / "generated")
    job_dir = tmp_path / "generated" / "hostile"
    entities = check_job_folder(job_dir, files)
    for name in ("automl_job.yml", "sweep_job.yml", "endpoint.yml"):
        assert entities[name].description == HOSTILE_DESCRIPTION, name
    assert entities["automl_job.yml"].limits.exit_score == 0.95
    for name in ("automl_job.yml", "sweep_job.yml"):
        rest = entities[name]._to_rest_object()
        assert rest.properties.description == HOSTILE_DESCRIPTION
    table = yaml.safe_load(files["data/MLTable"])
    assert table["paths"][0]["file"] == "../../../data/weird name.csv"
    assert table["transformations"][-1] == {"drop_columns": ["it's"]}
    rows = json.loads(files["sample_request.json"])["data"]
    assert list(rows[0]) == ["cons.conf.idx", "two words", 'say "hi"']
    assert rows[1]["two words"] == "b" and rows[0]["cons.conf.idx"] == 1.5
    namespace: dict = {"__file__": str(job_dir / "src" / "train.py")}  # it imports the azure_metrics.py beside it
    exec(compile(files["src/train.py"], "train.py", "exec"), namespace)  # defines, runs nothing (no __main__)
    assert namespace["DROP_COLUMNS"] == ["it's"]
    score: dict = {}
    exec(compile(files["score.py"], "score.py", "exec"), score)
    assert [c for c, _ in score["FEATURES"]] == ["cons.conf.idx", "two words", 'say "hi"']
    assert entities["environment.yml"].conda_file["dependencies"][-1]["pip"][-1] == 'requests>=2; python_version > "3.8"'
    loguniform = entities["sweep_job.yml"].search_space["tol"]
    assert (loguniform.min_value, loguniform.max_value) == (-12, -9)


def test_awkward_target_is_shell_quoted_in_the_sweep_command(tmp_path):
    spec = hostile_spec(tmp_path, target="two words")
    files = render_to(spec, tmp_path / "generated")
    job = check_job_folder(tmp_path / "generated" / "hostile", files)["sweep_job.yml"]
    argv = shlex.split(job.trial.command)
    assert argv[argv.index("--target") + 1] == "two words"
    assert job.objective.primary_metric == "accuracy"

    (tmp_path / "q" / "data").mkdir(parents=True)
    (tmp_path / "q" / "data" / "t.csv").write_text("a,it's\n1,x\n2,y\n", encoding="utf-8")
    spec = load(tmp_path / "q", {
        "name": "quote", "dataset": {"path": "data/t.csv", "format": "csv", "target": "it's"},
        "task": "classification", "metric": "accuracy",
        "sweep": {"model": "random_forest", "search_space": {"n_estimators": "choice(5, 10)"}},
    })
    files = render_to(spec, tmp_path / "q" / "generated")
    job = check_job_folder(tmp_path / "q" / "generated" / "quote", files)["sweep_job.yml"]
    argv = shlex.split(job.trial.command)
    assert argv[argv.index("--target") + 1] == "it's"
    assert json.loads(files["sample_request.json"])["data"] == [{"a": 1}, {"a": 2}]


def test_user_script_is_copied_byte_for_byte(tmp_path):
    place_data(tmp_path, "bank")
    script = b"# my trial\r\nimport sys\r\nprint(sys.argv)  # \xc3\xa9\r\n"
    (tmp_path / "my_train.py").write_bytes(script)
    data = base_spec("bank")
    data["sweep"] = {"script": "my_train.py", "search_space": {"depth": "choice(2, 4)", "rate": "uniform(0.1, 0.5)"}}
    spec = load(tmp_path, data)
    files = render_to(spec, tmp_path / "generated")
    assert files["src/train.py"] == script
    job = check_job_folder(tmp_path / "generated" / "bank", files)["sweep_job.yml"]
    assert job.trial.command == (
        "python train.py --data ${{inputs.training_data}} --target y --metric accuracy "
        "--depth ${{search_space.depth}} --rate ${{search_space.rate}}"
    )


# ---------------------------------------------------------------- determinism and tables


def test_rendering_is_deterministic_and_holds_no_absolute_path(tmp_path):
    from capc.render.render import render_artifacts

    place_data(tmp_path, "bank")
    spec = load(tmp_path, base_spec("bank"))
    first = render_artifacts(spec, tmp_path / "generated")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        second = render_artifacts(spec, Path("generated"))
    finally:
        os.chdir(cwd)
    assert first == second
    for rel, content in first.items():
        assert str(tmp_path).encode() not in content, rel
    # A copy of the whole tree elsewhere renders the same bytes: nothing depends on where it lies.
    import shutil

    shutil.copytree(tmp_path, tmp_path.parent / (tmp_path.name + "-copy"))
    moved = load(tmp_path.parent / (tmp_path.name + "-copy"), base_spec("bank"))
    assert render_artifacts(moved, tmp_path.parent / (tmp_path.name + "-copy") / "generated") == first


def test_output_folder_elsewhere_gets_a_relative_data_path(tmp_path):
    place_data(tmp_path / "project", "digits")
    spec = load(tmp_path / "project", base_spec("digits"))
    files = render_to(spec, tmp_path / "far" / "away" / "out")
    job = check_job_folder(tmp_path / "far" / "away" / "out" / "digits", files)["sweep_job.yml"]
    assert job.inputs["training_data"].path == "../../../../project/data/digits.csv"


def test_runtime_pins_are_the_installed_versions():
    from capc.render.pins import RUNTIME_PINS

    for name, pinned in RUNTIME_PINS.items():
        assert version(name) == pinned, name


def test_azure_name_tables_match_the_sdk():
    from azure.ai.ml._restclient.arm_ml_service.models import (
        ClassificationModels,
        ClassificationPrimaryMetrics,
        ForecastingModels,
        ForecastingPrimaryMetrics,
        RegressionModels,
        RegressionPrimaryMetrics,
    )
    from azure.ai.ml._utils.utils import camel_to_snake

    from capc import azure_names

    assert set(azure_names.ALGORITHMS["classification"]) == {m.value for m in ClassificationModels}
    assert set(azure_names.ALGORITHMS["regression"]) == {m.value for m in RegressionModels}
    assert set(azure_names.ALGORITHMS["forecasting"]) == {m.value for m in ForecastingModels}
    for models in (ClassificationModels, RegressionModels, ForecastingModels):
        for model in models:
            assert azure_names.yaml_spelling(model.value) == camel_to_snake(model.value)
    primary = (("classification", ClassificationPrimaryMetrics), ("regression", RegressionPrimaryMetrics), ("forecasting", ForecastingPrimaryMetrics))
    for task, enum in primary:
        assert {camel_to_snake(m) for m in azure_names.AUTOML_METRICS[task]} == {camel_to_snake(m.value) for m in enum}
    assert azure_names.metric_from_yaml("classification", "auc_weighted") == "AUC_weighted"


@pytest.mark.parametrize("value", [0.1, 1e-07, 1e20, -2.5e-12, 10, True, None, float("inf"), "a\"b\\c\n\u2028\x85\ufeff\U0001f600", [1, "x", None], {"k y": [0.5]}])
def test_yaml_filter_round_trips_through_pyyaml(value):
    from capc.render.render import json_value, py_literal, yaml_scalar

    assert yaml.safe_load(f"key: {yaml_scalar(value)}\n") == {"key": value}
    assert eval(py_literal(value), {}) == value  # noqa: S307 - a literal we just wrote
    if not (isinstance(value, float) and value == float("inf")):
        assert json.loads(json_value(value)) == value


def test_auto_deploy_adds_a_deploy_step_after_the_selection(tmp_path):
    """bankmarketing.yaml sets deployment.auto_deploy: the pipeline ends in a step that deploys as the user."""
    from azure.ai.ml.entities import UserIdentityConfiguration

    from capc.spec import load_spec

    spec = load_spec(SPECS / "bankmarketing.yaml")
    files = render_to(spec, tmp_path / "generated")
    job_dir = tmp_path / "generated" / spec.name
    pipeline = check_job_folder(job_dir, files)["pipeline_job.yml"]
    assert list(pipeline.jobs) == ["automl", "sweep", "select_best", "deploy"]
    deploy = pipeline.jobs["deploy"]
    assert isinstance(deploy.identity, UserIdentityConfiguration) and deploy.tags == {"capc_step": "deploy"}
    assert str(deploy.inputs["winner"]._data) == "${{parent.jobs.select_best.outputs.winner}}"
    select_pip = yaml.safe_load(files["select/conda.yml"])["dependencies"][-1]["pip"]
    assert "azureml-mlflow==1.62.0.post6" in select_pip and "azure-ai-ml==1.35.2" in select_pip
    # Without auto_deploy there is no deploy step and no script for it.
    other = load_spec(SPECS / "mnist.yaml")
    assert "select/deploy_winner.py" not in render_to(other, tmp_path / "other")


def test_deploy_winner_script_deploys_the_registered_version_with_all_traffic(tmp_path, monkeypatch):
    """The generated deploy step against a recording client: endpoint, deployment of NAME:VERSION, then traffic."""
    import importlib.util

    from capc.spec import load_spec

    spec = load_spec(SPECS / "bankmarketing.yaml")
    render_to(spec, tmp_path / "generated")
    job_dir = tmp_path / "generated" / spec.name
    module_spec = importlib.util.spec_from_file_location("deploy_winner", job_dir / "select" / "deploy_winner.py")
    script = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(script)
    winner = tmp_path / "winner"
    winner.mkdir()
    (winner / "winner.json").write_text(json.dumps({"model_name": "bankmarketing", "version": "7", "source": "sweep"}))
    calls = []

    class Poller:
        def result(self):
            return None

    class Operations:
        def __init__(self, kind):
            self.kind = kind

        def begin_create_or_update(self, entity):
            calls.append((self.kind, entity.name, getattr(entity, "model", None), dict(getattr(entity, "traffic", None) or {})))
            return Poller()

    client = type("Client", (), {"online_endpoints": Operations("endpoint"), "online_deployments": Operations("deployment")})()
    name, version = script.registered_winner(str(winner))
    script.deploy(client, name, version, str(job_dir / "endpoint.yml"), str(job_dir / "deployment.yml"), log=lambda _: None)
    assert calls == [
        ("endpoint", "bankmarketing-endpoint", None, {}),
        ("deployment", "blue", "azureml:bankmarketing:7", {}),
        ("endpoint", "bankmarketing-endpoint", None, {"blue": 100}),
    ]
    (winner / "winner.json").write_text(json.dumps({"model_name": "bankmarketing", "source": "sweep"}))
    with pytest.raises(SystemExit, match="no registered version"):
        script.registered_winner(str(winner))
    for variable in script.WORKSPACE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SystemExit, match="AZUREML_ARM_SUBSCRIPTION"):
        script.workspace_client()  # outside a job it says so instead of reaching for any credential
