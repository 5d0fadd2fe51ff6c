"""Azure backend: the pipeline's retraining schedule (the job folder's schedule.yml, from the spec's `schedule`).

A submit that runs the pipeline (`--only pipeline`) also creates or updates the schedule, whose job is that very
pipeline (inputs at capc's content-hashed assets, the environment resolved), as `az ml schedule create -f
schedule.yml` would; a dry run prints the schedule's REST request beside the pipeline's. The job folder's
schedule.yml is read with azure-ai-ml's own schedule loader.
"""

from __future__ import annotations

import json

SCHEDULE_FILE = "schedule.yml"
API_VERSION = "2023-06-01-preview"  # the api-version azure-ai-ml 1.35's ScheduleOperations sends


def load(folder, pipeline_job):
    """The JobSchedule of the folder's schedule.yml running `pipeline_job`; None without a schedule."""
    path = folder.path / SCHEDULE_FILE
    if not path.is_file():
        return None
    from azure.ai.ml.entities._load_functions import load_schedule

    from capc.azure.failures import azure_errors

    with azure_errors(f"load {path}"):
        schedule = load_schedule(source=path)
    schedule.create_job = pipeline_job  # the job as submitted, not the YAML's ./pipeline_job.yml loaded again
    return schedule


def rest_request(schedule, workspace) -> tuple[str, str, dict]:
    """(method, path with api-version, body) of the PUT that creates `schedule` (its job resolved offline)."""
    from azure.ai.ml._restclient.arm_ml_service._utils.model_base import SdkJSONEncoder

    body = json.loads(json.dumps(schedule._to_rest_object(), cls=SdkJSONEncoder, exclude_readonly=True))
    return "PUT", f"{workspace.arm_id}/schedules/{schedule.name}?api-version={API_VERSION}", body


def create(ml_client, schedule, workspace) -> str:
    """Create or update the schedule in the workspace; its name."""
    from capc.azure.failures import azure_errors
    from capc.azure.workspace import quiet_sdk_output

    with azure_errors(f"create the schedule {schedule.name}", workspace), quiet_sdk_output():
        created = ml_client.schedules.begin_create_or_update(schedule).result()
    return created.name
