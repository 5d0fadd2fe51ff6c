"""Azure target, contract: the real submission path (capc -> azure-ai-ml -> HTTPS) against a fake Azure ML service.

The fake (tests/azure/fake_azure.py) runs on 127.0.0.1 with its own certificate; azure-ai-ml reaches it as a custom
cloud (ARM_CLOUD_METADATA_URL), uploads go to its blob storage, and every request is recorded. Nothing may leave
loopback: the `no_outbound` guard (tests/conftest.py) refuses it and fails a test that tried. The job bodies a
submit sends are pinned by the dry-run goldens (test_azure_dry_run.py); here, what only a real submission shows.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil

import pytest
import yaml
from rich.console import Console

from capc.azure import backend
from capc.azure.workspace import WorkspaceRef
from capc.errors import CapcError
from capc.jobfolder import read_job_folder
from fake_azure import (
    BLOB_CONTAINER, DRY_RUN_CASES, ENDPOINT_KEYS, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeCredential, JobOutcome,
)
from repo import REPO

NAME = "bankmarketing"
# bankmarketing's 15 ms suits a real LightGBM model on a quiet machine, not every test machine: the tests here keep
# the budget path (download, measure) but not a verdict that hangs on p99; test_azure_serving_budget.py tests that.
LENIENT_BUDGET_MS = 10_000


@pytest.fixture
def run(fake_azure, job_dirs, workspace, capc_home, bank_models):
    """submit() for one reference spec against the fake, with a console captured in memory; bankmarketing's runs
    leave a real model, for its serving budget to measure."""

    def _run(name=NAME, job_dir=None, **kwargs):
        console = Console(file=io.StringIO(), width=200)
        kwargs.setdefault("credential", FakeCredential())
        kwargs.setdefault("poll_seconds", 0)
        folder = read_job_folder(job_dir or job_dirs(name), kwargs.pop("only", None))
        if name == NAME:
            fake_azure.runs_leave(bank_models.fast)
            # No load budget here (each check would start azmlinfsrv): test_azure_serving_budget.py tests it.
            lenient = {"max_latency_ms": LENIENT_BUDGET_MS, "min_requests_per_s": None, "load": {"concurrency": 4}}
            folder = dataclasses.replace(folder, deployment={**folder.deployment, **lenient})
        result = backend.submit(folder, kwargs.pop("workspace", workspace), console=console, **kwargs)
        result.output = console.file.getvalue()
        return result

    return _run


def _only_put(fake, pattern):
    found = fake.find("PUT", pattern, blob=False)
    assert len(found) == 1, [r.path for r in fake.requests if r.method == "PUT"]
    return found[0]


# ---------------------------------------------------------------- the whole submission


def test_submit_creates_assets_submits_follows_and_registers(run, fake_azure, job_dirs):
    result = run()
    fake = fake_azure
    ws = fake.workspace_id

    # compute: an AmlCompute cluster with the spec's size and scale settings
    compute = _only_put(fake, r"/computes/cpu-cluster$").json["properties"]
    assert compute["computeType"] == "AmlCompute"
    assert compute["properties"]["vmSize"] == "Standard_DS3_v2"
    assert compute["properties"]["scaleSettings"] == {"maxNodeCount": 4, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT2M"}

    # the AutoML training data: an MLTable asset staged with the csv beside it, versioned by content hash
    table_put = _only_put(fake, r"/data/bankmarketing-training/versions/[0-9a-f]{16}$")
    table = table_put.json["properties"]
    assert table["dataType"] == "mltable"
    assert table["referencedUris"] == ["./bankmarketing_train.csv"]
    uploaded_table = table["dataUri"].split("/paths/", 1)[1]
    mltable_blob = fake.blobs[f"/{BLOB_CONTAINER}/{uploaded_table}/MLTable"][0].decode()
    assert "file: ./bankmarketing_train.csv" in mltable_blob
    real_csv = REPO / "specs" / "data" / "bankmarketing" / "bankmarketing_train.csv"
    assert fake.blobs[f"/{BLOB_CONTAINER}/{uploaded_table}/bankmarketing_train.csv"][0] == real_csv.read_bytes()

    # the sweep's input: the csv as a uri_file asset
    file_put = _only_put(fake, r"/data/bankmarketing-training-file/versions/[0-9a-f]{16}$")
    assert file_put.json["properties"]["dataType"] == "uri_file"

    # the environment from environment.yml + conda.yml, versioned by content hash
    env_put = _only_put(fake, r"/environments/bankmarketing-env/versions/[0-9a-f]{16}$")
    env = env_put.json["properties"]
    assert env["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
    assert "mlflow" in env["condaFile"] and "lightgbm" in env["condaFile"]
    env_id = env_put.path

    # The job bodies themselves are pinned once, by the dry-run goldens (test_azure_dry_run.py), and
    # test_dry_run_bodies_are_what_a_submit_sends proves a submit sends exactly those. What only a submit shows:
    # the jobs point at the compute, data, environment and code it created.
    automl = next(r.json["properties"] for r in fake.find("PUT", r"/jobs/[^/]+$") if r.json["properties"]["jobType"] == "AutoML")
    assert automl["taskDetails"]["trainingData"] == {"jobInputType": "mltable", "uri": table_put.path}
    assert automl["computeId"] == f"{ws}/computes/cpu-cluster"
    sweep = next(r.json["properties"] for r in fake.find("PUT", r"/jobs/[^/]+$") if r.json["properties"]["jobType"] == "Sweep")
    trial = sweep["trial"]
    assert trial["environmentId"] == env_id
    assert re.fullmatch(rf"{re.escape(ws)}/codes/[0-9a-f-]+/versions/1", trial["codeId"])
    assert sweep["inputs"] == {"training_data": {"jobInputType": "uri_file", "uri": file_put.path}}
    code_blobs = [path for path in fake.blobs if path.endswith("/src/train.py")]
    assert len(code_blobs) == 1 and fake.blobs[code_blobs[0]][0] == (job_dirs(NAME) / "src" / "train.py").read_bytes()

    # followed to the end; the best run across both (sweep 0.93 > AutoML 0.91) registered as an MLflow model
    assert [(j.kind, j.status) for j in result.jobs] == [("automl", "Completed"), ("sweep", "Completed")]
    automl_job, sweep_job = result.jobs
    assert (automl_job.best_run_id, automl_job.best_value) == (f"{automl_job.name}_1", 0.91)
    assert (sweep_job.best_run_id, sweep_job.best_value) == (f"{sweep_job.name}_1", 0.93)
    model = _only_put(fake, r"/models/bankmarketing/versions/1$").json["properties"]
    assert model["modelType"] == "mlflow_model"
    assert model["modelUri"] == f"azureml://jobs/{sweep_job.name}_1/outputs/artifacts/paths/outputs/model/"
    manifest = json.loads((job_dirs(NAME) / "manifest.json").read_text())
    assert model["tags"]["capc_run_id"] == f"{sweep_job.name}_1"
    assert model["tags"]["capc_spec_sha256"] == manifest["spec_sha256"]
    assert model["tags"]["capc_source"] == "sweep" and model["tags"]["capc_metric"] == "accuracy"
    assert result.model.ref == "bankmarketing:1"

    # what the user saw: each job's Studio URL and the progress lines
    assert f"https://ml.azure.com/runs/{automl_job.name}?wsid={ws}" in result.output
    assert f"sweep {sweep_job.name}: Running, 2 child runs, best accuracy so far: 0.8800" in result.output
    assert f"sweep {sweep_job.name}: Completed, 3 child runs, best accuracy so far: 0.9300" in result.output
    assert "registered model bankmarketing:1 from sweep run" in result.output

    # every ARM call carried a token from the credential capc was given, for this resource manager
    import jwt

    arm = [r for r in fake.requests if r.path.startswith("/subscriptions/")]
    audiences = {jwt.decode(r.headers["authorization"].removeprefix("Bearer "), options={"verify_signature": False})["aud"] for r in arm}
    assert arm and audiences == {fake.url}


@pytest.mark.parametrize("name, only", DRY_RUN_CASES)
def test_dry_run_bodies_are_what_a_submit_sends(name, only, run, fake_azure, workspace):
    if only == "pipeline":
        fake_azure.job_outcomes["Pipeline"] = JobOutcome(scores=[], registers=name)
    dry = run(name, dry_run=True, only=only)
    assert not fake_azure.requests, "a dry run contacts nothing"
    sent = run(name, only=only)
    # Jobs by display name (<spec>-<kind>): mnist's conditional sweep submits a sweep job per family.
    puts = {r.json["properties"]["displayName"]: r for r in fake_azure.find("PUT", r"/jobs/[^/]+$")}
    jobs = [r for r in dry.requests if r["job"] != "schedule"]
    assert len(puts) == len(jobs) == (1 if only else 3 if name == "mnist" else 2)
    for request in dry.requests:
        if request["job"] == "schedule":  # the pipeline's retraining schedule, whose job is the pipeline as sent
            [actual] = fake_azure.find("PUT", r"/schedules/[^/]+$")
            body = json.loads(json.dumps(actual.json))
            _as_in_a_dry_run(body["properties"]["action"]["jobDefinition"], request["body"]["properties"]["action"]["jobDefinition"], fake_azure)
        else:
            actual = puts[f"{name}-{request['job']}"]
            body = json.loads(json.dumps(actual.json))
            _as_in_a_dry_run(body["properties"], request["body"]["properties"], fake_azure)
        assert request["body"] == body
        method, path_and_query = request["method"], request["path"]
        assert method == actual.method
        assert path_and_query.split("?")[1] == f"api-version={actual.query['api-version'][0]}"
    assert sent.jobs


def _as_in_a_dry_run(sent: dict, dry: dict, fake_azure) -> None:
    """A job's properties as sent, less what only exists at submission: git facts of the working copy, the uploaded
    code's asset id and the anonymous components' ids (the dry run shows placeholders)."""
    for key in list(sent.get("properties") or {}):
        if key.startswith(("azureml.git", "mlflow.source.git")):
            del sent["properties"][key]
    if "trial" in sent:
        assert dry["trial"]["codeId"] == "<code asset: src/ uploaded by azure-ai-ml at submission>"
        assert re.fullmatch(rf"{re.escape(fake_azure.workspace_id)}/codes/[0-9a-f-]+/versions/1", sent["trial"]["codeId"])
        sent["trial"]["codeId"] = dry["trial"]["codeId"]
    for step, node in sent.get("jobs", {}).items():  # pipeline steps: anonymous components
        holder = node.get("trial", node)
        if "componentId" in holder:
            assert re.fullmatch(rf"{re.escape(fake_azure.workspace_id)}/components/azureml_anonymous/versions/[0-9a-f-]+", holder["componentId"])
            holder["componentId"] = f"<anonymous component of step {step}, registered by azure-ai-ml at submission>"


def test_pipeline_runs_both_and_its_step_registers_the_model(run, fake_azure):
    result = run(only="pipeline")
    [pipeline] = fake_azure.find("PUT", r"/jobs/[^/]+$")
    body = pipeline.json["properties"]  # its steps and their identities: the bankmarketing-pipeline golden
    assert body["inputs"]["training_table"]["uri"] == _only_put(fake_azure, r"/data/bankmarketing-training/versions/").path
    assert body["inputs"]["training_file"]["uri"] == _only_put(fake_azure, r"/data/bankmarketing-training-file/versions/").path
    env_id = _only_put(fake_azure, r"/environments/bankmarketing-env/versions/").path
    components = [r.json["properties"]["componentSpec"] for r in fake_azure.find("PUT", r"/components/azureml_anonymous/versions/")]
    trial = [c for c in components if "train.py" in c["command"]]
    steps = [c for c in components if "train.py" not in c["command"]]
    assert len(trial) == 1 and trial[0]["environment"] == f"azureml:{env_id}", "trials run in the registered environment"
    # select_best.py and deploy_winner.py talk to the workspace: they keep select/conda.yml (azureml-mlflow, azure-ai-ml),
    # which azure-ai-ml registers as one anonymous environment, versioned by its content.
    workspace_envs = {r.path for r in fake_azure.find("PUT", r"/environments/CliV2AnonymousEnvironment/versions/")}
    assert len(workspace_envs) == 1
    [put] = fake_azure.find("PUT", r"/environments/CliV2AnonymousEnvironment/versions/")[:1]
    assert "azureml-mlflow==" in json.dumps(put.json)
    assert len(steps) == 2 and all(c["environment"] == f"azureml:{put.path}" for c in steps)
    assert [(j.kind, j.status) for j in result.jobs] == [("pipeline", "Completed")]
    assert not fake_azure.find("PUT", r"/models/"), "capc registers nothing itself: the pipeline's step did"
    assert (result.model.ref, result.model.source, result.model.job) == ("bankmarketing:1", "pipeline", result.jobs[0].name)
    # the spec's schedule: created beside the pipeline, running the pipeline as it was sent
    [schedule] = fake_azure.find("PUT", r"/schedules/bankmarketing-retrain$")
    scheduled = schedule.json["properties"]
    assert scheduled["trigger"] == {"expression": "0 3 1 */6 *", "timeZone": "UTC", "triggerType": "Cron"}
    assert scheduled["action"]["jobDefinition"]["inputs"] == body["inputs"]


def test_image_table_points_at_the_uploaded_images(run, fake_azure, job_dirs):
    """mri: images go up as a folder asset first; the staged JSON lines name them by datastore URL."""
    run("mri", only="automl")
    images = _only_put(fake_azure, r"/data/mri-images/versions/[0-9a-f]{16}$").json["properties"]
    assert images["dataType"] == "uri_folder"
    folder = images["dataUri"].split("/paths/", 1)[1]  # LocalUpload/<hash>/mri
    table = _only_put(fake_azure, r"/data/mri-training/versions/[0-9a-f]{16}$").json["properties"]
    staged = table["dataUri"].split("/paths/", 1)[1]
    lines = fake_azure.blobs[f"/{BLOB_CONTAINER}/{staged}/images.jsonl"][0].decode().splitlines()
    generated = (job_dirs("mri") / "data" / "images.jsonl").read_text().splitlines()
    assert len(lines) == len(generated) == 199
    base = (f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/workspaces/{WORKSPACE}"
            f"/datastores/workspaceblobstore/paths/{folder}")
    for line, original in zip(lines, generated):
        row, source = json.loads(line), json.loads(original)
        assert row["label"] == source["label"]
        assert row["image_url"] == f"{base}/{source['label']}/{source['image_url'].rsplit('/', 1)[1]}"
        assert f"/{BLOB_CONTAINER}/{folder}/{source['label']}/{source['image_url'].rsplit('/', 1)[1]}" in fake_azure.blobs
    assert "file: ./images.jsonl" in fake_azure.blobs[f"/{BLOB_CONTAINER}/{staged}/MLTable"][0].decode()


def test_second_submit_creates_no_second_compute_data_or_environment(run, fake_azure):
    first = run()
    count = {kind: len(fake_azure.find("PUT", rf"/{kind}/", blob=False)) for kind in ("computes", "data", "environments")}
    uploads = len(fake_azure.find("PUT", r"/LocalUpload/", blob=True))
    second = run()
    assert [a.action for a in first.assets] == ["created", "created", "created", "created"]
    assert [(a.kind, a.action) for a in second.assets] == [("compute", "exists"), ("data", "exists"), ("data", "exists"), ("environment", "exists")]
    assert {kind: len(fake_azure.find("PUT", rf"/{kind}/", blob=False)) for kind in count} == count
    assert len(fake_azure.find("PUT", r"/LocalUpload/", blob=True)) == uploads
    assert len(fake_azure.find("PUT", r"/jobs/[^/]+$")) == 4  # jobs are submitted again: that is the point
    assert second.model.ref == "bankmarketing:2"


def test_compute_scale_settings_are_updated_in_place(run, fake_azure):
    fake_azure.put_resource("computes/cpu-cluster", {"properties": {"computeType": "AmlCompute", "provisioningState": "Succeeded", "properties": {
        "vmSize": "STANDARD_DS3_V2", "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 2, "nodeIdleTimeBeforeScaleDown": "PT2M"}}}})
    result = run(only="automl")
    assert result.assets[0].action == "updated"
    assert _only_put(fake_azure, r"/computes/cpu-cluster$").json["properties"]["properties"]["scaleSettings"]["maxNodeCount"] == 4


def test_only_one_job(run, fake_azure):
    result = run(only="sweep")
    assert [j.kind for j in result.jobs] == ["sweep"]
    assert [r.json["properties"]["jobType"] for r in fake_azure.find("PUT", r"/jobs/[^/]+$")] == ["Sweep"]
    assert not fake_azure.find("PUT", r"/data/bankmarketing-training/")  # the MLTable is AutoML's only
    assert result.model.source == "sweep"


def test_no_wait_then_status_and_cancel(run, fake_azure, workspace, capc_home):
    result = run(wait=False)
    assert [j.status for j in result.jobs] == ["NotStarted", "NotStarted"]
    assert not fake_azure.find("PUT", r"/models/")
    assert "capc status bankmarketing --target azure" in result.output
    record = json.loads((capc_home / "azure" / "bankmarketing.json").read_text())
    assert [j["name"] for j in record["jobs"]] == [j.name for j in result.jobs]

    console = Console(file=io.StringIO(), width=200)
    jobs = backend.status(NAME, None, credential=FakeCredential(), console=console)  # workspace from the record
    assert [j.status for j in jobs] == ["Running", "Running"]
    assert result.jobs[0].name in console.file.getvalue()

    cancelled = backend.cancel(NAME, workspace, credential=FakeCredential(), console=console)
    assert cancelled == [j.name for j in result.jobs]
    assert [r.path.rsplit("/", 2)[1] for r in fake_azure.find("POST", r"/jobs/[^/]+/cancel$")] == cancelled
    assert [j.status for j in backend.status(result.jobs[1].name, workspace, credential=FakeCredential(), console=console)] == ["Canceled"]


def test_status_of_an_unknown_name(fake_azure, workspace, capc_home):
    with pytest.raises(CapcError) as caught:
        backend.status("nosuchjob", workspace, credential=FakeCredential(), console=Console(file=io.StringIO()))
    assert caught.value.message == (
        f"there is no job named nosuchjob in {workspace.describe()}, and capc has no record of a submit of a spec named nosuchjob."
    )


def test_status_of_a_job_by_name(run, fake_azure, workspace):
    submitted = run(only="sweep")
    console = Console(file=io.StringIO(), width=250)
    [job] = backend.status(submitted.jobs[0].name, workspace, credential=FakeCredential(), console=console)
    assert (job.kind, job.status, job.best_value, job.children) == ("sweep", "Completed", 0.93, 3)
    assert submitted.jobs[0].name in console.file.getvalue() and "0.9300" in console.file.getvalue()


# ---------------------------------------------------------------- errors a user will meet


def test_compute_name_taken_with_another_size(run, fake_azure):
    fake_azure.put_resource("computes/cpu-cluster", {"properties": {"computeType": "AmlCompute", "provisioningState": "Succeeded", "properties": {
        "vmSize": "Standard_NC6s_v3", "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 4, "nodeIdleTimeBeforeScaleDown": "PT2M"}}}})
    with pytest.raises(CapcError) as caught:
        run()
    assert caught.value.message == (
        "the compute cluster 'cpu-cluster' already exists in workspace 'ws-capc' (resource group 'rg-capc', subscription "
        f"{SUBSCRIPTION}; from test config) with VM size Standard_NC6s_v3, but the spec asks for Standard_DS3_v2; Azure cannot resize a cluster."
    )
    assert caught.value.hint.startswith("set compute.size to Standard_NC6s_v3 or choose another compute.name")
    assert not fake_azure.find("PUT", r"/computes/") and not fake_azure.find("PUT", r"/jobs/")


def test_compute_name_taken_by_a_compute_instance(run, fake_azure):
    fake_azure.put_resource("computes/cpu-cluster", {"properties": {"computeType": "ComputeInstance", "provisioningState": "Succeeded", "properties": {"vmSize": "Standard_DS3_v2"}}})
    with pytest.raises(CapcError) as caught:
        run()
    assert "is taken in workspace 'ws-capc'" in caught.value.message and "by a computeinstance compute" in caught.value.message


def test_compute_the_spec_does_not_describe_must_exist(run, fake_azure, job_dirs, tmp_path):
    bare = tmp_path / "generated" / NAME
    shutil.copytree(job_dirs(NAME), bare)
    (tmp_path / "specs").symlink_to(REPO / "specs")  # the folder reads the spec's data in place, ../../specs/data
    (bare / "compute.yml").unlink()  # a job folder whose jobs name a cluster it does not describe
    with pytest.raises(CapcError) as caught:
        run(job_dir=bare)
    assert caught.value.message.startswith("the jobs run on compute 'cpu-cluster', which does not exist in workspace 'ws-capc'")


def test_quota_exceeded_when_creating_the_cluster(run, fake_azure):
    fake_azure.fail("PUT", r"/computes/cpu-cluster$", 400, "OperationNotAllowed",
                    "Operation could not be completed as it results in exceeding approved standardDSv2Family Cores quota. "
                    "Additional details - Current Limit: 4, Current Usage: 4, Additional Required: 4.")
    with pytest.raises(CapcError) as caught:
        run()
    assert caught.value.failure == "quota"
    assert caught.value.message == (
        "Azure ML refused to create compute cluster 'cpu-cluster': the subscription's quota does not allow it "
        "(OperationNotAllowed: Operation could not be completed as it results in exceeding approved standardDSv2Family "
        "Cores quota. Additional details - Current Limit: 4, Current Usage: 4, Additional Required: 4)."
    )
    assert "request more quota" in caught.value.hint


@pytest.mark.parametrize(
    "workspace_ref, failure, message",
    [
        (WorkspaceRef("99999999-0000-0000-0000-000000000000", RESOURCE_GROUP, WORKSPACE, "config.json"), "wrong_subscription",
         "the subscription of workspace 'ws-capc' (resource group 'rg-capc', subscription 99999999-0000-0000-0000-000000000000; "
         "from config.json) does not exist or this login cannot see it (The subscription '99999999-0000-0000-0000-000000000000' could not be found)."),
        (WorkspaceRef(SUBSCRIPTION, "rg-other", WORKSPACE, "config.json"), "wrong_resource_group",
         f"the resource group of workspace 'ws-capc' (resource group 'rg-other', subscription {SUBSCRIPTION}; from config.json) "
         "does not exist (Resource group 'rg-other' could not be found)."),
        (WorkspaceRef(SUBSCRIPTION, RESOURCE_GROUP, "ws-typo", "config.json"), "wrong_workspace",
         f"workspace 'ws-typo' (resource group 'rg-capc', subscription {SUBSCRIPTION}; from config.json) was not found "
         "(The Resource 'Microsoft.MachineLearningServices/workspaces/ws-typo' under resource group 'rg-capc' was not found)."),
    ],
)
def test_wrong_subscription_resource_group_or_workspace(run, fake_azure, workspace_ref, failure, message):
    with pytest.raises(CapcError) as caught:
        run(workspace=workspace_ref)
    assert caught.value.failure == failure
    assert caught.value.message == message
    assert [r.method for r in fake_azure.requests if r.path.startswith("/subscriptions/")] == ["GET"], "stops at the workspace check"


def test_no_permission(run, fake_azure):
    fake_azure.fail("GET", r"/workspaces/ws-capc$", 403, "AuthorizationFailed",
                    "The client 'me@example.com' does not have authorization to perform action "
                    "'Microsoft.MachineLearningServices/workspaces/read' over scope '/subscriptions/x'.")
    with pytest.raises(CapcError) as caught:
        run()
    assert caught.value.failure == "no_permission"
    assert caught.value.message.startswith("your identity has no permission to read the workspace in workspace 'ws-capc'")
    assert caught.value.hint.startswith("ask the workspace owner for the 'AzureML Data Scientist' role")


def test_token_rejected_mid_way(run, fake_azure):
    fake_azure.fail("PUT", r"/environments/", 401, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.")
    with pytest.raises(CapcError) as caught:
        run()
    assert caught.value.failure == "token_rejected"
    assert "(ExpiredAuthenticationToken)" in caught.value.message


def test_a_job_that_fails_in_the_cloud(run, fake_azure):
    fake_azure.job_outcomes["Sweep"] = JobOutcome(status="Failed", scores=[0.5], error="Execution failed. UserError: No module named 'lightgbm'")
    with pytest.raises(CapcError) as caught:
        run()
    sweep_name = next(r.path.rsplit("/", 1)[1] for r in fake_azure.find("PUT", r"/jobs/[^/]+$") if r.json["properties"]["jobType"] == "Sweep")
    assert caught.value.message == (
        f"bankmarketing on Azure: the sweep job {sweep_name} ended Failed: Execution failed. UserError: No module named "
        "'lightgbm'. The best completed run was still registered as bankmarketing:1."
    )
    assert caught.value.hint.startswith(f"open https://ml.azure.com/runs/{sweep_name}?wsid=")
    assert _only_put(fake_azure, r"/models/bankmarketing/versions/1$").json["properties"]["tags"]["capc_source"] == "automl"


def test_jobs_that_record_no_score_register_nothing(run, fake_azure):
    fake_azure.job_outcomes.update({"AutoML": JobOutcome(scores=[]), "Sweep": JobOutcome(scores=[])})
    with pytest.raises(CapcError) as caught:
        run()
    assert caught.value.message == (
        "the jobs of bankmarketing completed but none recorded a best run with a value of accuracy, so no model was registered."
    )
    assert not fake_azure.find("PUT", r"/models/")


def test_a_job_the_service_refuses(run, fake_azure):
    fake_azure.fail("PUT", r"/jobs/", 400, "UserError", "Compute cpu-cluster is in a failed state.", times=1)
    with pytest.raises(CapcError) as caught:
        run(only="automl")
    assert caught.value.failure == "service_error"
    assert caught.value.message == "Azure ML refused to submit the automl job (400 UserError): Compute cpu-cluster is in a failed state."


# ---------------------------------------------------------------- deploy and the endpoint


def test_deploy_show_keys_logs_invoke_delete(run, fake_azure, job_dirs, workspace):
    submitted = run()
    console = Console(file=io.StringIO(), width=200)
    job_dir = job_dirs(NAME)
    credential = FakeCredential()
    deployed = backend.deploy(job_dir, NAME, workspace, credential=credential, console=console)
    ws = fake_azure.workspace_id

    endpoint_puts = fake_azure.find("PUT", r"/onlineEndpoints/bankmarketing-endpoint$")
    assert [p.json["properties"]["authMode"] for p in endpoint_puts] == ["Key", "Key"]
    assert [p.json["properties"]["traffic"] for p in endpoint_puts] == [{}, {"blue": 100}]
    deployment = _only_put(fake_azure, r"/onlineEndpoints/bankmarketing-endpoint/deployments/blue$").json["properties"]
    assert deployment["model"] == f"{ws}/models/bankmarketing/versions/{submitted.model.version}"
    assert deployment["instanceType"] == "Standard_DS3_v2"
    assert deployment["codeConfiguration"]["scoringScript"] == "score.py"
    assert deployment["environmentId"] == _only_put(fake_azure, r"/environments/bankmarketing-env/versions/").path
    generated = yaml.safe_load((job_dir / "deployment.yml").read_text())
    assert deployment["environmentVariables"] == generated["environment_variables"]
    assert deployment["requestSettings"]["requestTimeout"] == "PT5S"
    assert deployed.traffic == {"blue": 100} and deployed.provisioning_state == "Succeeded"
    assert deployed.scoring_uri == f"{fake_azure.url}/score/bankmarketing-endpoint"

    shown = backend.endpoint_show(job_dir, workspace, credential=credential)
    assert shown["traffic"] == {"blue": 100}
    assert [d["name"] for d in shown["deployments"]] == ["blue"]
    assert backend.endpoint_keys(job_dir, workspace, credential=credential) == {"primary_key": ENDPOINT_KEYS[0], "secondary_key": ENDPOINT_KEYS[1]}
    assert "azmlinfsrv started" in backend.endpoint_logs(job_dir, workspace, credential=credential, lines=10)
    assert fake_azure.find("POST", r"/deployments/blue/getLogs$")[-1].json == {"tail": 10}
    answer = backend.invoke(job_dir, workspace, credential=credential)
    assert json.loads(answer) == {"predictions": ["no", "yes"]}
    scored = fake_azure.find("POST", r"^/score/bankmarketing-endpoint$")[-1]
    assert scored.headers["authorization"] == f"Bearer {ENDPOINT_KEYS[0]}"
    assert scored.json == json.loads((job_dir / "sample_request.json").read_text())
    rotated = backend.endpoint_keys(job_dir, workspace, credential=credential, regenerate="secondary")
    assert rotated["primary_key"] == ENDPOINT_KEYS[0] and rotated["secondary_key"] != ENDPOINT_KEYS[1]
    assert fake_azure.find("POST", r"/regenerateKeys$")[-1].json["keyType"] == "Secondary"
    assert backend.endpoint_delete(job_dir, workspace, credential=credential) == "bankmarketing-endpoint"
    with pytest.raises(CapcError) as caught:
        backend.endpoint_show(job_dir, workspace, credential=credential)
    assert caught.value.message.startswith("the online endpoint bankmarketing-endpoint does not exist in workspace 'ws-capc'")


def test_deploy_without_a_registered_model(fake_azure, job_dirs, workspace, capc_home):
    with pytest.raises(CapcError) as caught:
        backend.deploy(job_dirs(NAME), NAME, workspace, credential=FakeCredential(), console=Console(file=io.StringIO()))
    assert caught.value.message == f"no model named bankmarketing is registered in {workspace.describe()}."


def test_deployment_out_of_quota(run, fake_azure, job_dirs, workspace):
    run(only="sweep")
    fake_azure.fail("PUT", r"/deployments/blue$", 400, "OutOfQuota",
                    "Not enough quota available for Standard_DS3_v2 in SubscriptionId 0000. Current usage/limit: 4/4.")
    with pytest.raises(CapcError) as caught:
        backend.deploy(job_dirs(NAME), NAME, workspace, credential=FakeCredential(), console=Console(file=io.StringIO()))
    assert caught.value.failure == "quota"
    assert caught.value.message.startswith("Azure ML refused to create deployment blue of endpoint bankmarketing-endpoint: the subscription's quota")
