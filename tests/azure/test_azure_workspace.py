"""Azure target: which workspace (config file, environment, discovery, missing) and credential failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from capc.azure.workspace import WorkspaceRef, resolve_workspace
from capc.errors import CapcError
from fake_azure import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeCredential
from repo import REPO

ENV = {"AZURE_SUBSCRIPTION_ID": "sub-env", "AZURE_RESOURCE_GROUP": "rg-env", "AZUREML_WORKSPACE_NAME": "ws-env"}
PORTAL_CONFIG = {"subscription_id": "sub-file", "resource_group": "rg-file", "workspace_name": "ws-file"}


def test_config_file_from_the_portal(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(PORTAL_CONFIG))
    ws = resolve_workspace(path, ENV)  # the file wins over the environment
    assert (ws.subscription_id, ws.resource_group, ws.workspace_name) == ("sub-file", "rg-file", "ws-file")
    assert ws.source == str(path)
    assert ws.arm_id == "/subscriptions/sub-file/resourceGroups/rg-file/providers/Microsoft.MachineLearningServices/workspaces/ws-file"


def test_config_file_in_the_older_scope_form(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"Scope": "/subscriptions/s1/resourceGroups/r1/providers/Microsoft.MachineLearningServices/workspaces/w1"}))
    ws = resolve_workspace(path, {})
    assert (ws.subscription_id, ws.resource_group, ws.workspace_name) == ("s1", "r1", "w1")


def test_environment_when_no_file_is_given(tmp_path):
    ws = resolve_workspace(None, ENV, cwd=tmp_path)
    assert ws == WorkspaceRef("sub-env", "rg-env", "ws-env", "environment")


def test_config_json_discovered_in_the_working_directory(tmp_path):
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps(PORTAL_CONFIG))
    ws = resolve_workspace(None, {}, cwd=tmp_path)
    assert ws.workspace_name == "ws-file"
    assert ws.source.endswith(".azureml/config.json")


def test_nothing_configured(tmp_path):
    with pytest.raises(CapcError) as caught:
        resolve_workspace(None, {}, cwd=tmp_path)
    assert caught.value.message == "no Azure ML workspace is configured."
    assert "--workspace config.json" in caught.value.hint
    assert "AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE_NAME" in caught.value.hint


def test_environment_only_partly_set(tmp_path):
    with pytest.raises(CapcError) as caught:
        resolve_workspace(None, {"AZURE_SUBSCRIPTION_ID": "s"}, cwd=tmp_path)
    assert caught.value.message == (
        "the Azure ML workspace is only partly set in the environment: AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME are missing."
    )


def test_config_file_missing(tmp_path):
    with pytest.raises(CapcError) as caught:
        resolve_workspace(tmp_path / "nope.json", ENV)
    assert caught.value.message == f"the workspace config {tmp_path / 'nope.json'} does not exist."


def test_config_file_not_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{subscription_id: 1")
    with pytest.raises(CapcError) as caught:
        resolve_workspace(path, {})
    assert caught.value.message.startswith(f"the workspace config {path} is not valid JSON (line 1:")


def test_config_file_lacking_keys(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"subscription_id": "s"}))
    with pytest.raises(CapcError) as caught:
        resolve_workspace(path, {})
    assert caught.value.message == f"the workspace config {path} lacks resource_group, workspace_name."


# ---------------------------------------------------------------- credentials


def _workspace() -> WorkspaceRef:
    return WorkspaceRef(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, "test")


def test_not_signed_in(fake_azure):
    from azure.core.exceptions import ClientAuthenticationError

    from capc.azure.workspace import check_access, connect

    message = (
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        "Attempted credentials:\n\tEnvironmentCredential: EnvironmentCredential authentication unavailable."
    )
    client = connect(_workspace(), FakeCredential(error=ClientAuthenticationError(message)))
    with pytest.raises(CapcError) as caught:
        check_access(client, _workspace())
    error = caught.value
    assert error.failure == "not_signed_in"
    assert error.message == (
        "capc could not get an Azure access token to read the workspace: no credential is signed in "
        "(DefaultAzureCredential failed to retrieve a token from the included credentials. Attempted credentials: "
        "EnvironmentCredential: EnvironmentCredential authentication unavailable)."
    )
    assert error.hint.startswith("run `az login`")
    assert not fake_azure.find("GET", r"/workspaces/"), "no request may leave without a token"


def test_credential_unavailable_is_not_signed_in_too(fake_azure):
    from azure.identity import CredentialUnavailableError

    from capc.azure.workspace import check_access, connect

    client = connect(_workspace(), FakeCredential(error=CredentialUnavailableError("Please run 'az login' to set up an account")))
    with pytest.raises(CapcError) as caught:
        check_access(client, _workspace())
    assert caught.value.failure == "not_signed_in"
    assert "Please run 'az login' to set up an account" in caught.value.message


def test_expired_token_is_rejected(fake_azure):
    from capc.azure.workspace import check_access, connect

    client = connect(_workspace(), FakeCredential(token="expired-token"))
    with pytest.raises(CapcError) as caught:
        check_access(client, _workspace())
    assert caught.value.failure == "token_rejected"
    assert caught.value.message == (
        "Azure rejected the access token while trying to read the workspace (InvalidAuthenticationToken): "
        "the login has expired or belongs to another tenant."
    )
    assert fake_azure.find("GET", r"/workspaces/ws-capc$")[0].headers["authorization"] == "Bearer expired-token"


def test_token_requested_for_the_clouds_resource_manager(fake_azure):
    from capc.azure.workspace import check_access, connect

    credential = FakeCredential()
    check_access(connect(_workspace(), credential), _workspace())
    assert credential.scopes and set(credential.scopes) == {(f"{fake_azure.url}/.default",)}


def test_capc_build_and_the_azure_package_do_not_import_the_sdk(tmp_path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from capc.cli import cli\n"
        "import capc.azure\n"
        f"result = CliRunner().invoke(cli, ['build', {str(REPO / 'specs' / 'mnist.yaml')!r}, '--out', {str(tmp_path)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('azure.ai.ml', 'azure.identity')))\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
