"""The AutoML job's run lifecycle that tabular AutoML and AutoML for images share (capc.local.automl_run)."""

from __future__ import annotations

import pytest

from capc.local.automl_run import automl_job_run
from capc.state import tracking


class Progress:
    def __init__(self):
        self.started = []

    def automl_started(self, budget_s):
        self.started.append(budget_s)


@pytest.mark.usefixtures("capc_home")
@pytest.mark.parametrize(("raised", "status"), [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")])
def test_an_automl_run_ended_by_an_error_is_finished_with_what_ended_it(raised, status):
    client = tracking.client()
    experiment = tracking.experiment_id(client, "bank")
    submit_run = tracking.start_run(client, experiment, "submit", "submit")
    progress = Progress()
    with pytest.raises(raised):
        with automl_job_run(client, experiment, submit_run, progress, 60, {"capc.family": "keras_cnn"}) as run_id:
            assert tracking.status_of(client.get_run(run_id)) == "running"
            raise raised
    run = client.get_run(run_id)
    assert tracking.status_of(run) == status
    assert run.data.tags["capc.family"] == "keras_cnn" and run.data.tags[tracking.PARENT_TAG] == submit_run
    assert progress.started == [60]
