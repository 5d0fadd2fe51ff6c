"""`capc plan`'s load section: the load budget, the cores that measure it here, the instance's vCPUs and the
throughput expected there (scaled by cores, an estimate; a lower bound on more cores)."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from capc import serving_load
from capc.cli import cli
from capc.state import registry
from repo import SPECS

BANK = SPECS / "bankmarketing.yaml"


def _plan(*args: str):
    return CliRunner().invoke(cli, ["plan", str(BANK), *args])


def test_the_plan_states_the_cores_the_instance_vcpus_and_the_estimate(workdir):
    cores = len(os.sched_getaffinity(0))
    result = _plan("--json")
    assert result.exit_code == 0, result.output
    load = json.loads(result.output)["specs"][0]["serving_load"]
    assert load["budget"] == ">= 300 requests/s and p99 <= 25 ms at concurrency 4"
    assert load["measured_cores"] == cores and load["local_workers"] == max(4, cores)
    instance = load["instance"]
    assert instance["instance_type"] == "Standard_DS3_v2" and instance["vcpus"] == 4 and instance["workers"] == 4
    assert instance["estimate"] is True and instance["requests_per_s"] == round(300 * 4 / cores, 1)
    assert instance["lower_bound"] is (cores <= 4)

    text = _plan()
    assert text.exit_code == 0, text.output
    flat = " ".join(text.output.split())
    assert f"measured on {cores} local cores; Standard_DS3_v2 has 4 vCPUs and WORKER_COUNT 4, so serves on 4" in flat
    if cores < 4:
        assert "a load budget met on this machine is a lower bound there" in flat
    assert f"~{300 * 4 / cores:,.0f} requests/s per instance on Standard_DS3_v2 (estimate, scaled by cores 4/{cores})" in flat


def test_the_plan_scales_the_last_registered_models_figure_and_one_worker_is_flagged(workdir):
    model_dir = workdir / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    figure = serving_load.LoadFigure(500.0, 5.0, 11.0, 1000, 0, 2.0, 4, 2, 2, [0, 1], measure_s=4.0)
    registry.register(model_dir, name="bankmarketing", task="classification", metric="accuracy", value=0.915, goal="maximize",
                      source="automl", run_id="0" * 32, spec_sha256="0" * 64, job_dir=str(workdir), selection={"load": figure.record()})
    result = _plan("--set", "deployment.max_concurrent_requests_per_instance=1", "--json")
    assert result.exit_code == 0, result.output
    load = json.loads(result.output)["specs"][0]["serving_load"]
    assert load["last_model"] == "bankmarketing:1" and load["last_load"]["requests_per_s"] == 500
    assert load["last_instance_estimate"]["requests_per_s"] == 250 and load["last_instance_estimate"]["serving_cores"] == 1
    text = " ".join(_plan("--set", "deployment.max_concurrent_requests_per_instance=1").output.split())
    assert "last registered bankmarketing:1: 500 requests/s, p99 11.0 ms (p50 5.0) at concurrency 4 on 2 cores" in text
    assert "raise deployment.max_concurrent_requests_per_instance to use its 4 vCPUs" in text

