"""Local endpoints are named as Azure names them (the job folder's endpoint.yml: the spec's deployment.endpoint),
the model's name is an alias where it is unambiguous, and an endpoint an earlier capc named after its model keeps
working under both names."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.errors import CapcError
from capc.serve import naming
from capc.serve.state import EndpointState, endpoint_dir, make_private_dir, write_keys, write_state


def job_folder(root, model: str, endpoint: str | None):
    folder = root / "generated" / model
    folder.mkdir(parents=True)
    if endpoint:
        (folder / "endpoint.yml").write_text(f'name: "{endpoint}"\nauth_mode: "key"\n')
    return folder


def recorded(home, name: str, model: str, job) -> None:
    """An endpoint's state as deploy leaves it (no process: it shows as stopped)."""
    folder = endpoint_dir(name, home)
    make_private_dir(folder)
    write_keys(folder, {"primaryKey": "k1", "secondaryKey": "k2"})
    write_state(folder, EndpointState(name=name, model=model, model_dir=str(job / "model"), job_dir=str(job), proxy=None,
                                      server=None, worker_count=1, request_timeout_ms=5000, max_body_bytes=1024,
                                      created="2026-01-01T00:00:00Z", updated="2026-01-01T00:00:00Z"))


def test_a_deploy_goes_to_the_endpoint_the_spec_names(tmp_path):
    job = job_folder(tmp_path, "bankmarketing", "bankmarketing-endpoint")
    assert naming.deploy_target("bankmarketing", job, tmp_path / "home") == "bankmarketing-endpoint"
    # A job folder compiled without endpoint.yml (none to read): the model's name, as before.
    assert naming.deploy_target("housing", job_folder(tmp_path, "housing", None), tmp_path / "home") == "housing"


def test_the_endpoint_name_and_the_model_name_both_find_the_endpoint(tmp_path, monkeypatch):
    home = tmp_path / "home"
    job = job_folder(tmp_path, "bankmarketing", "bankmarketing-endpoint")
    recorded(home, "bankmarketing-endpoint", "bankmarketing:3", job)
    assert naming.resolve("bankmarketing-endpoint", home) == "bankmarketing-endpoint"
    assert naming.resolve("bankmarketing", home) == "bankmarketing-endpoint"
    assert naming.resolve("housing", home) == "housing"  # unknown: the caller says no endpoint has that name
    monkeypatch.setenv("CAPC_HOME", str(home))
    runner = CliRunner()
    for name in ("bankmarketing-endpoint", "bankmarketing"):
        shown = runner.invoke(cli, ["endpoints", "show", name, "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["name"] == "bankmarketing-endpoint"
    missing = runner.invoke(cli, ["endpoints", "show", "housing"])
    assert missing.exit_code == 1 and "no local endpoint named `housing`" in missing.output
    assert "endpoints: bankmarketing-endpoint" in missing.output


def test_a_model_served_by_two_endpoints_is_no_alias(tmp_path):
    home = tmp_path / "home"
    job = job_folder(tmp_path, "bank", "bank-endpoint")
    recorded(home, "bank-endpoint", "bank:1", job)
    recorded(home, "bank-canary", "bank:2", job)
    with pytest.raises(CapcError) as err:
        naming.resolve("bank", home)
    assert err.value.message == "no local endpoint is named `bank`, and 2 serve model bank: bank-canary, bank-endpoint."


def test_an_endpoint_an_earlier_capc_named_after_its_model_keeps_working(tmp_path):
    home = tmp_path / "home"
    job = job_folder(tmp_path, "bankmarketing", "bankmarketing-endpoint")
    recorded(home, "bankmarketing", "bankmarketing:2", job)  # state written under the model's name
    assert naming.resolve("bankmarketing", home) == "bankmarketing"
    assert naming.resolve("bankmarketing-endpoint", home) == "bankmarketing"  # the name its spec gives finds it too
    # A redeploy of the model replaces the model of that running endpoint rather than starting a second one.
    assert naming.deploy_target("bankmarketing", job, home) == "bankmarketing"
    # Once an endpoint of the spec's name exists, that one is the target.
    recorded(home, "bankmarketing-endpoint", "bankmarketing:3", job)
    assert naming.deploy_target("bankmarketing", job, home) == "bankmarketing-endpoint"
    assert naming.resolve("bankmarketing-endpoint", home) == "bankmarketing-endpoint"
