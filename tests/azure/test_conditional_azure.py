"""Azure target, conditional sweeps: mnist's sweep.families compiles to one sweep job per family; `capc submit
--target azure` submits each (against the fake service) and registers the best run across them and AutoML."""

from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from capc.azure import backend
from capc.azure.jobs import SubmittedJob
from capc.azure.selection import select
from capc.jobfolder import read_job_folder
from fake_azure import FakeCredential, JobOutcome


def _job(kind: str, value: float | None, status: str = "Completed") -> SubmittedJob:
    return SubmittedJob(kind, f"job-{kind}", None, status, best_run_id=f"run-{kind}", best_value=value)


def _not_downloadable(job, into):
    raise ConnectionError("offline")


def test_the_winner_is_the_best_across_automl_and_every_familys_sweep(job_dirs):
    """Without a serving budget (mnist has none) the best by the primary metric wins, whatever its download does."""
    folder = read_job_folder(job_dirs("mnist"))

    def winner(jobs, goal="maximize", prefer="best"):
        chosen = select(jobs, dataclasses.replace(folder, goal=goal, deployment={**folder.deployment, "model": prefer}), _not_downloadable)
        assert chosen.notes == ["could not be measured: download failed: offline"]
        return chosen.winner.kind

    jobs = [_job("automl", 0.96), _job("sweep_logistic_regression", 0.95), _job("sweep_svc", 0.99)]
    assert winner(jobs) == "sweep_svc"
    assert winner(jobs, "minimize") == "sweep_logistic_regression"
    # deployment.model: sweep picks among the per-family sweeps only; automl only AutoML.
    assert winner([_job("automl", 0.999), *jobs[1:]], prefer="sweep") == "sweep_svc"
    assert winner(jobs, prefer="automl") == "automl"
    assert winner([_job("sweep_svc", 0.99, "Failed"), jobs[1]]) == "sweep_logistic_regression"


def test_submit_sends_a_sweep_job_per_family_and_registers_the_best(fake_azure, job_dirs, workspace, capc_home):
    fake_azure.job_outcomes.update({"AutoML": JobOutcome(scores=[0.9]), "Sweep": JobOutcome(scores=[0.95, 0.97])})
    console = Console(file=io.StringIO(), width=200)
    result = backend.submit(
        read_job_folder(job_dirs("mnist")), workspace, console=console, credential=FakeCredential(), poll_seconds=0,
    )
    assert [j.kind for j in result.jobs] == ["automl", "sweep_logistic_regression", "sweep_svc"]
    puts = fake_azure.find("PUT", r"/jobs/[^/]+$")
    assert sorted(r.json["properties"]["displayName"] for r in puts) == ["mnist-automl", "mnist-sweep_logistic_regression", "mnist-sweep_svc"]
    for put in puts:
        if put.json["properties"]["jobType"] == "Sweep":
            family = put.json["properties"]["displayName"].removeprefix("mnist-sweep_")
            assert put.json["properties"]["trial"]["command"].startswith(f"python train_{family}.py ")
            assert put.json["properties"]["tags"]["capc_family"] == family
    assert result.model is not None and result.model.source.startswith("sweep_") and result.model.value == 0.97
