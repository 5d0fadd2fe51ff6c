"""Backend, local: the lifecycle of an AutoML job's run, shared by tabular AutoML (submit.run_automl_job) and AutoML
for images (images.run_image_automl) - started as a child of the submit's run and shown started, finished
`interrupted` on Ctrl+C and `failed` on any other error; the job finishes it itself when it ends otherwise."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from capc.state import tracking
from capc.state.tracking import FAILED, INTERRUPTED


@contextmanager
def automl_job_run(mlflow_client, exp_id: str, submit_run: str, progress, budget_s: float, tags: dict | None = None) -> Iterator[str]:
    """The AutoML run's id for the block; `budget_s` is what the progress display counts down from."""
    run_id = tracking.start_run(mlflow_client, exp_id, "automl", "automl", parent=submit_run, tags=tags)
    if progress:
        progress.automl_started(budget_s)
    try:
        yield run_id
    except KeyboardInterrupt:
        tracking.finish_run(mlflow_client, run_id, INTERRUPTED)
        raise
    except BaseException:
        tracking.finish_run(mlflow_client, run_id, FAILED)
        raise
