"""Fixtures of the Azure-target tests: the fake Azure ML service, the compiled reference job folders, a workspace,
and real bank-marketing models for the fake's runs to leave behind."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bank_models import save_model, save_sleeping_model

from capc.azure.workspace import WorkspaceRef
from fake_azure import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML, compiled_job_dir, schema_unavailable


@pytest.fixture
def fake_azure(tmp_path, monkeypatch, no_outbound):
    """A running fake Azure ML service, with azure-ai-ml pointed at it through the environment."""
    # azure-ai-ml evaluates some defaults at import time from the cloud metadata: import it before the fake's
    # metadata URL is set, so tests see only the requests of the code under test.
    import azure.ai.ml.entities  # noqa: F401
    import azure.ai.ml.operations._data_operations as data_operations

    fake = FakeAzureML(tmp_path).start()
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    # azure-ai-ml remembers the current cloud in the process environment: start and end each test without one.
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "placeholder")
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD")
    # The managed-identity endpoints, should anything ever build a ManagedIdentityCredential: loopback, closed.
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:9/token")
    monkeypatch.setenv("IMDS_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")
    # The MLTable JSON schema lives on a public CDN that azure-ai-ml fetches with three retries (~5 s); here it
    # is unreachable by design, so answer "not available" at once (the SDK then skips that validation).
    monkeypatch.setattr(data_operations, "download_mltable_metadata_schema", schema_unavailable)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def job_dirs(tmp_path_factory):
    """name -> the compiled job folder of that reference spec (generated/<name>/, or built once per session)."""
    scratch = tmp_path_factory.mktemp("compiled")
    return lambda name: compiled_job_dir(name, scratch)


@pytest.fixture
def workspace() -> WorkspaceRef:
    """The fake service's one workspace."""
    return WorkspaceRef(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, "test config")


@pytest.fixture(scope="session")
def bank_models(tmp_path_factory):
    """MLflow models a bankmarketing run could leave: `fast` (a real scikit-learn pipeline) and `slow` (the same
    behind a sleep of `slow_s` per call), saved once per session."""
    root = tmp_path_factory.mktemp("bank_models")
    fast = save_model(root / "fast", pip_requirements=[])
    slow_s = 0.1
    return SimpleNamespace(fast=fast, slow=save_sleeping_model(root / "slow", fast, slow_s), slow_s=slow_s)

