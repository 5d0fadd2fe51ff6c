"""Plan stage with `--target azure`: the region's vCPU quota read through azure-ai-ml, against the loopback fake.

The fake answers MLClient.compute.list_sizes / list_usage (the region's VM sizes and per-family usage); the CLI's
DefaultAzureCredential is swapped for the fake credential, as in the other Azure tests.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from capc.cli import cli
from fake_azure import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeCredential
from repo import SPECS

BANK = str(SPECS / "bankmarketing.yaml")  # cpu-cluster: 4 x Standard_DS3_v2 (4 vCPUs) = 16 vCPUs at peak
MRI = str(SPECS / "mri.yaml")  # gpu-cluster: 2 x Standard_NC4as_T4_v3 (4 vCPUs) = 8 vCPUs at peak


@pytest.fixture
def plan_azure(fake_azure, tmp_path, monkeypatch):
    import capc.azure.workspace as workspace

    monkeypatch.setattr(workspace, "default_credential", lambda: FakeCredential())
    monkeypatch.setenv("CAPC_HOME", str(tmp_path / "home"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "workspace_name": WORKSPACE}))

    def run(*args):
        return CliRunner().invoke(cli, ["plan", *args, "--target", "azure", "--workspace", str(config)])

    return run


def test_enough_quota(plan_azure, fake_azure):
    result = plan_azure(BANK, MRI, "--json")
    assert result.exit_code == 0, result.output
    bank, mri = json.loads(result.output)["specs"]
    assert bank["quota"] == [{"family": "standardDSv2Family", "clusters": ["cpu-cluster"], "needed_vcpus": 16, "in_use": 0,
                              "limit": 24, "left": 24, "enough": True}]
    assert mri["quota"] == [{"family": "standardNCASv3_T4Family", "clusters": ["gpu-cluster"], "needed_vcpus": 8, "in_use": 0,
                             "limit": 8, "left": 8, "enough": True}]
    # azure-ai-ml's own calls, for the workspace's region
    assert fake_azure.find("GET", r"/providers/Microsoft\.MachineLearningServices/locations/westeurope/usages$")
    assert fake_azure.find("GET", r"/providers/Microsoft\.MachineLearningServices/locations/westeurope/vmSizes$")
    text = plan_azure(BANK)
    assert text.exit_code == 0 and "vCPU quota of the workspace's region" in text.output


def test_too_little_quota_is_an_error(plan_azure, fake_azure):
    fake_azure.region_usages = [fake_azure.family_usage("standardDSv2Family", in_use=12, limit=24)]
    result = plan_azure(BANK)
    assert result.exit_code == 1
    assert "not enough" in result.output  # the table is printed first
    assert result.output.strip().endswith(
        f"error: {BANK}: the standardDSv2Family clusters (cpu-cluster) may need 16 vCPUs at once; the region has "
        "12 left (12 of 24 in use). request more quota for this VM family (Azure ML studio > Quota), or lower "
        "compute.max_instances or choose another compute.size"
    )


def test_a_family_without_quota_is_not_enough(plan_azure, fake_azure):
    fake_azure.region_usages = []
    result = plan_azure(MRI)
    assert result.exit_code == 1
    assert "may need 8 vCPUs at once; the region has no quota." in result.output


def test_size_not_offered_in_the_region(plan_azure, fake_azure):
    fake_azure.region_vm_sizes = [size for size in fake_azure.region_vm_sizes if size["name"] != "Standard_NC4as_T4_v3"]
    result = plan_azure(MRI)
    assert result.exit_code == 1
    assert f"error: {MRI}: compute.size `Standard_NC4as_T4_v3` (cluster `gpu-cluster`) is not a VM size Azure ML offers" in result.output


def test_workspace_not_found(plan_azure, fake_azure, tmp_path):
    config = tmp_path / "other.json"
    config.write_text(json.dumps({"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "workspace_name": "ws-gone"}))
    result = CliRunner().invoke(cli, ["plan", BANK, "--target", "azure", "--workspace", str(config)])
    assert result.exit_code == 1
    assert result.output.startswith("error: workspace 'ws-gone' (resource group 'rg-capc',")
    assert "was not found" in result.output and "Traceback" not in result.output


def test_workspace_unreachable(plan_azure, fake_azure):
    fake_azure.fail("GET", r"/workspaces/ws-capc$", 0, "", "")  # the connection drops on every try
    result = plan_azure(BANK)
    assert result.exit_code == 1
    assert result.output.startswith(
        "error: capc could not reach Azure to read the VM sizes and vCPU quota of the workspace's region:"
    )
    assert "check the network connection" in result.output and "Traceback" not in result.output


def test_no_workspace_configured(fake_azure, tmp_path, monkeypatch):
    for key in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["plan", BANK, "--target", "azure"])
    assert result.exit_code == 1
    assert result.output.startswith("error: no Azure ML workspace is configured.")
