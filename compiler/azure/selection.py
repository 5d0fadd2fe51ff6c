"""Backend, Azure: the run `capc submit --target azure` registers - the best by the primary metric within the serving budget.

Candidates are the best child run of each completed job (AutoML's best model, the best trial of each sweep), those
deployment.model allows: the same candidates the pipeline's select step compares. A job's other children are not
candidates: a sweep's parent records only its best child's score (the others' would take a read of each run's
metrics), and each would cost a download; a tighter search, or `capc submit` locally (which weighs every kept
AutoML model), is the way to a smaller model.

The rule is capc.selection's (capc.serving_cost's), the one local selection and the pipeline's step run: best first, each candidate's
run artifacts downloaded with azure-ai-ml (capc.azure.jobs.download_model) into a temporary folder only when it is
its turn, measured through the job folder's score.py with rows of the training data on this machine, and the first
within budget wins. Without a budget the best wins as before and only it is downloaded and measured, so the result
shows what serving it costs; one that cannot be downloaded or measured still wins then, with a note. Image models
are not measured, as locally.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from capc import selection, serving_cost
from capc.azure.jobs import SubmittedJob
from capc.azure.registry import candidates
from capc.jobfolder import JobFolder
from capc.selection import Selection, budget_of

# (job, folder to download into) -> the folder holding the downloaded MLmodel; raises on failure.
FetchModel = Callable[[SubmittedJob, Path], Path]


def _describe(job: SubmittedJob) -> dict:
    return {"source": job.kind, "job": job.name, "run_id": job.best_run_id, "value": job.best_value}


def select(jobs: list[SubmittedJob], folder: JobFolder, fetch_model: FetchModel,
           on_fetch: Callable[[SubmittedJob], None] | None = None,
           on_measured: Callable[[SubmittedJob, serving_cost.ServingCost], None] | None = None) -> Selection | None:
    """The job whose best run to register (None when no job has one); raises CapcError when none fits the budget."""
    pool = candidates(jobs, folder.deployment_model)
    scratch = Path(tempfile.mkdtemp(prefix="capc-azure-models-"))
    contenders = [serving_cost.Contender(f"{j.kind} run {j.best_run_id}", j.best_value, str(scratch / j.kind), payload=j) for j in pool]

    def fetch(contender: serving_cost.Contender) -> None:
        job: SubmittedJob = contender.payload
        if on_fetch is not None:
            on_fetch(job)
        try:
            contender.model_dir = str(fetch_model(job, Path(contender.model_dir)))
        except Exception as exc:  # a model that cannot be fetched cannot be measured: choose() says so and moves on
            raise serving_cost.MeasureError(f"download failed: {getattr(exc, 'message', None) or exc}") from None

    try:
        return selection.select(
            contenders, goal=folder.goal, budget=budget_of(folder.deployment), job_dir=folder.path, task=folder.task,
            describe=_describe, fetch=fetch,
            on_measured=(lambda c: on_measured(c.payload, c.cost)) if on_measured is not None else None,
            hint="the figures are this machine's (p99 of one row through score.py; under load, azmlinfsrv on its cores); "
                 "`capc submit` locally weighs every model AutoML kept, not only each job's best",
            deployment=folder.deployment,  # the load budget, measured here after the download
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
