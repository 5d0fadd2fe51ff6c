"""Azure target, serving budget: `capc submit --target azure` downloads the runs it compares (azure-ai-ml's
jobs.download, from the fake's artifact store), measures each through the job folder's score.py, registers the best
within deployment.max_latency_ms, and says what it passed over; none fits is exit 1 naming the fastest.

The fake's runs leave real MLflow models (tests/bank_models.py): a fast bank-marketing pipeline, or the same behind
a sleep (a deliberately slow scoring path). The sleeps are far from the budget either way, so a shared machine's
jitter cannot flip a verdict. The fake's sweep scores best (0.93), AutoML next (0.91).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import tempfile

import pytest
from click.testing import CliRunner
from rich.console import Console

from capc.azure import backend
from capc.cli import cli
from capc.errors import CapcError
from capc.jobfolder import read_job_folder
from fake_azure import ARTIFACT_CONTAINER, RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeCredential
from repo import REPO

NAME = "bankmarketing"
BUDGET_MS = 60  # the fast model answers one row in a few ms (p99 under 20 on a busy machine); the slow one sleeps 100
# The bank spec's load budget (300 requests/s) hangs on the machine: a lenient one keeps the path (azmlinfsrv under
# 4 clients on this machine, after the download) without a verdict that a busy machine could flip.
LENIENT_LOAD = ("--set", "deployment.min_requests_per_s=1", "--set", "deployment.load.max_p99_ms=4000")
NO_LOAD = {"min_requests_per_s": None, "load": {"concurrency": 4}}  # the tests of the one-call budget alone


@pytest.fixture
def scratch_tmp(tmp_path, monkeypatch):
    """A temporary folder of the test's own for tempfile, to see that the downloads are cleaned up."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def cli_submit(fake_azure, capc_home, tmp_path, monkeypatch, scratch_tmp):
    """`capc submit specs/bankmarketing.yaml --target azure --json [ARGS]` against the fake: (exit code, stdout, stderr)."""
    import capc.azure.workspace as workspace

    monkeypatch.setattr(workspace, "default_credential", FakeCredential)
    monkeypatch.setenv("CAPC_AZURE_POLL_SECONDS", "0")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "workspace_name": WORKSPACE}))

    def submit(*args):
        result = CliRunner().invoke(
            cli, ["submit", str(REPO / "specs" / f"{NAME}.yaml"), "--target", "azure", "--workspace", str(config), "--json", *args],
        )
        return result.exit_code, result.stdout, result.stderr

    return submit


def _downloaded_runs(fake) -> set[str]:
    """The runs whose artifacts were fetched from the artifact store."""
    paths = [r.path for r in fake.requests if r.is_blob and r.method == "GET" and r.path.startswith(f"/{ARTIFACT_CONTAINER}/ExperimentRun/")]
    return {re.match(rf"/{ARTIFACT_CONTAINER}/ExperimentRun/dcid\.([^/]+)/", p)[1] for p in paths}


def test_the_budget_passes_over_a_slow_better_run_and_registers_one_within_it(cli_submit, fake_azure, bank_models, capc_home, scratch_tmp):
    fake_azure.job_outcomes["Sweep"].model = bank_models.slow
    fake_azure.runs_leave(bank_models.fast)
    code, out, err = cli_submit("--set", f"deployment.max_latency_ms={BUDGET_MS}", *LENIENT_LOAD)
    assert code == 0, err
    result = json.loads(out)
    automl, sweep = (j["name"] for j in result["jobs"])

    # the sweep's best run (0.93) is over budget: AutoML's (0.91) is registered, from its MLflow model folder
    model = fake_azure.find("PUT", r"/models/bankmarketing/versions/1$")[0].json["properties"]
    assert model["modelUri"] == f"azureml://jobs/{automl}_1/outputs/artifacts/paths/outputs/mlflow-model/"
    assert result["model"]["source"] == "automl" and result["model"]["run_id"] == f"{automl}_1"
    selection = result["selection"]
    assert selection["budget"] == f"p99 latency <= {BUDGET_MS} ms"
    [passed] = selection["passed_over"]
    assert (passed["source"], passed["run_id"], passed["value"]) == ("sweep", f"{sweep}_1", 0.93)
    [reason] = passed["reasons"]
    slow_p99 = float(re.fullmatch(rf"p99 latency ([0-9.]+) ms > {BUDGET_MS} ms", reason)[1])
    assert slow_p99 >= bank_models.slow_s * 1000
    # the chosen model was really measured through score.py, and says so in its tags
    assert selection["serving"]["serving_p99_ms"] < BUDGET_MS and selection["serving"]["serving_calls"] >= 20
    assert float(model["tags"]["capc_serving_p99_ms"]) == pytest.approx(selection["serving"]["serving_p99_ms"], rel=1e-3)

    # what the user read: each candidate's cost, the pass-over and why
    assert f"serving cost of sweep run {sweep}_1: p99 {slow_p99:.1f} ms" in err
    assert f"passed over sweep run {sweep}_1 (0.93): p99 latency {slow_p99:.1f} ms > {BUDGET_MS} ms" in err
    assert f"registered model bankmarketing:1 from automl run {automl}_1" in err
    # downloaded with azure-ai-ml, lazily (best first, stopping at the first that fits), then cleaned up
    assert _downloaded_runs(fake_azure) == {f"{sweep}_1", f"{automl}_1"}
    assert list(scratch_tmp.iterdir()) == []
    assert json.loads((capc_home / "azure" / f"{NAME}.json").read_text())["selection"] == selection
    # the load budget too, on this machine after the download: the winner's figure, how it was taken, the estimate
    assert selection["load_budget"] == ">= 1 requests/s and p99 <= 4000 ms at concurrency 4"
    assert selection["load"]["concurrency"] == 4 and selection["load"]["requests"] > 0 and selection["load"]["server"].startswith("azmlinfsrv")
    assert selection["instance_estimate"]["instance_type"] == "Standard_DS3_v2" and selection["instance_estimate"]["workers"] == 4
    assert "expected on Standard_DS3_v2: ~" in err


def test_no_run_within_the_budget_is_exit_1_naming_the_fastest(cli_submit, fake_azure, bank_models, tmp_path, scratch_tmp):
    slower = tmp_path / "slower"  # AutoML's run: twice as slow as the sweep's, so the sweep's is the fastest
    from bank_models import save_sleeping_model

    fake_azure.job_outcomes["AutoML"].model = save_sleeping_model(slower, bank_models.fast, 2 * bank_models.slow_s)
    fake_azure.job_outcomes["Sweep"].model = bank_models.slow
    code, out, err = cli_submit("--set", f"deployment.max_latency_ms={BUDGET_MS}", *LENIENT_LOAD)
    assert code == 1 and out == ""
    sweep = next(r.path.rsplit("/", 1)[1] for r in fake_azure.find("PUT", r"/jobs/[^/]+$") if r.json["properties"]["jobType"] == "Sweep")
    message = err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: no candidate fits the serving budget \(p99 latency <= {BUDGET_MS} ms\) among 2; the fastest is sweep run "
        rf"{sweep}_1 \(0\.93\) with p99 [0-9.]+ ms and [0-9.]+ MB\. Raise deployment\.max_latency_ms / deployment\.max_model_mb, "
        r"or search smaller models\. .*",
        message,
    ), message
    assert "Traceback" not in err
    assert not fake_azure.find("PUT", r"/models/"), "nothing within budget: nothing registered"
    assert list(scratch_tmp.iterdir()) == []


def test_without_a_budget_the_best_run_wins_as_before_and_shows_its_cost(fake_azure, job_dirs, workspace, capc_home, bank_models):
    fake_azure.job_outcomes["AutoML"].model = bank_models.slow  # not the winner: never downloaded
    fake_azure.runs_leave(bank_models.fast)
    folder = read_job_folder(job_dirs(NAME))
    folder = dataclasses.replace(folder, deployment={**folder.deployment, "max_latency_ms": None, "max_model_mb": None, **NO_LOAD})
    console = Console(file=io.StringIO(), width=200)
    result = backend.submit(folder, workspace, console=console, credential=FakeCredential(), poll_seconds=0)
    automl, sweep = result.jobs
    assert (result.model.source, result.model.run_id, result.model.value) == ("sweep", f"{sweep.name}_1", 0.93)
    assert result.selection.passed_over == [] and result.selection.budget.describe() == "no serving budget"
    assert result.selection.cost is not None and result.selection.cost.p99_ms < bank_models.slow_s * 1000
    assert _downloaded_runs(fake_azure) == {f"{sweep.name}_1"}
    assert f"sweep run {sweep.name}_1 serves with p99 " in console.file.getvalue()


def test_without_a_budget_a_run_that_cannot_be_downloaded_still_wins_with_a_note(fake_azure, job_dirs, workspace, capc_home):
    """mnist has no budget and its runs leave no model here: the best still wins, and the note says why it has no cost."""
    result = backend.submit(read_job_folder(job_dirs("mnist")), workspace, console=Console(file=io.StringIO(), width=200),
                            credential=FakeCredential(), poll_seconds=0)
    assert result.model is not None
    [note] = result.selection.notes
    assert note == (f"could not be measured: download failed: run {result.model.run_id} left no MLflow model in "
                    f"{'outputs/mlflow-model' if result.model.source == 'automl' else 'outputs/model'}/ among its artifacts")


def test_a_budget_with_a_run_that_left_no_model_passes_it_over(fake_azure, job_dirs, workspace, capc_home, bank_models):
    fake_azure.job_outcomes["AutoML"].model = bank_models.fast  # the sweep's runs leave none
    folder = read_job_folder(job_dirs(NAME))
    folder = dataclasses.replace(folder, deployment={**folder.deployment, "max_latency_ms": BUDGET_MS, **NO_LOAD})
    result = backend.submit(folder, workspace, console=Console(file=io.StringIO(), width=200), credential=FakeCredential(), poll_seconds=0)
    assert result.model.source == "automl"
    [(job, reasons)] = result.selection.passed_over
    assert job.kind == "sweep" and reasons == [f"could not be measured: download failed: run {job.best_run_id} left no MLflow model in outputs/model/ among its artifacts"]


def test_no_candidate_fits_after_a_failed_job_says_both(fake_azure, job_dirs, workspace, capc_home, bank_models):
    from fake_azure import JobOutcome

    fake_azure.job_outcomes["Sweep"] = JobOutcome(status="Failed", scores=[0.5], error="Execution failed.")
    fake_azure.job_outcomes["AutoML"].model = bank_models.slow
    folder = read_job_folder(job_dirs(NAME))
    with pytest.raises(CapcError) as caught:
        backend.submit(folder, workspace, console=Console(file=io.StringIO(), width=200), credential=FakeCredential(), poll_seconds=0)
    assert caught.value.message.startswith("no candidate fits the serving budget (p99 latency <= 15 ms) among 1; the fastest is automl run ")
    assert "Besides, bankmarketing on Azure: the sweep job " in caught.value.message and "ended Failed: Execution failed." in caught.value.message
