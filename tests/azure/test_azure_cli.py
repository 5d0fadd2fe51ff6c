"""Azure target through the command line: `capc submit|status|deploy|invoke ... --target azure` against the fake.

The CLI builds credentials with DefaultAzureCredential; here `default_credential` hands out the fake credential
instead (DefaultAzureCredential is never built in tests: it would probe the managed-identity address).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from capc.cli import cli
from fake_azure import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeCredential
from repo import REPO

GOLDEN = REPO / "tests" / "azure" / "golden" / "azure_dry_run"


@pytest.fixture
def azure_cli(fake_azure, capc_home, tmp_path, monkeypatch):
    """Runs `capc ...` with a portal config.json, a scratch CAPC_HOME and build folder, and the fake credential."""
    import capc.azure.workspace as workspace

    credential = FakeCredential()
    monkeypatch.setattr(workspace, "default_credential", lambda: credential)
    monkeypatch.setenv("CAPC_AZURE_POLL_SECONDS", "0")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "workspace_name": WORKSPACE}))
    out = tmp_path / "generated"

    def run(*args, out_dir=True):
        extra = ["--out", str(out)] if out_dir else []
        return CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False)

    run.config = str(config)
    run.credential = credential
    return run


def test_submit_status_deploy_invoke(azure_cli, fake_azure, bank_models):
    spec = str(REPO / "specs" / "bankmarketing.yaml")
    fake_azure.runs_leave(bank_models.fast)  # measured against a budget no test machine misses (see test_azure_backend)
    result = azure_cli("submit", spec, "--target", "azure", "--workspace", azure_cli.config, "--set", "deployment.max_latency_ms=10000",
                       "--set", "deployment.min_requests_per_s=1", "--set", "deployment.load.max_p99_ms=4000")
    assert result.exit_code == 0, result.output
    assert "submitted automl job" in result.output and "submitted sweep job" in result.output
    assert "https://ml.azure.com/runs/" in result.output
    assert "registered model bankmarketing:1 from sweep run" in result.output
    assert len(fake_azure.find("PUT", r"/jobs/[^/]+$")) == 2

    status = azure_cli("status", "bankmarketing", "--target", "azure", "--workspace", azure_cli.config, out_dir=False)
    assert status.exit_code == 0, status.output
    assert status.output.count("Completed") == 2


def test_dry_run_through_the_cli_prints_the_golden(azure_cli, fake_azure):
    result = azure_cli("submit", str(REPO / "specs" / "mnist.yaml"), "--target", "azure", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output == (GOLDEN / "mnist.txt").read_text(encoding="utf-8")
    assert not fake_azure.requests


def test_not_signed_in_is_one_paragraph_and_exit_1(azure_cli, fake_azure):
    from azure.core.exceptions import ClientAuthenticationError

    azure_cli.credential.error = ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token from the included credentials.")
    result = CliRunner().invoke(
        cli, ["submit", str(REPO / "specs" / "mnist.yaml"), "--target", "azure", "--workspace", azure_cli.config, "--out", str(fake_azure.folder / "gen")],
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: capc could not get an Azure access token to read the workspace: no credential is signed in")
    assert "run `az login`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_workspace_configured(azure_cli, monkeypatch, tmp_path):
    for key in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(key, raising=False)
    empty = tmp_path / "elsewhere"  # no config.json to discover here
    empty.mkdir()
    monkeypatch.chdir(empty)
    result = CliRunner().invoke(cli, ["submit", str(REPO / "specs" / "mnist.yaml"), "--target", "azure", "--out", str(tmp_path / "g")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no Azure ML workspace is configured. pass --workspace config.json")
