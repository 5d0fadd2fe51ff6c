"""Job folder stage: an Azure ML v2 job YAML written by hand (not by capc), read for `capc submit JOB.yml` and
`capc validate JOB.yml`.

Loaded with the spec loader's line marks (so problems point at FILE:LINE:COL) and with `--set key.path=value`
applied as `az ml job create --set` applies it. Paths in the file are relative to its folder, as Azure reads them.

What a file is comes from its content (capc.jobfolder.kinds). What runs locally: `type: sweep`, `type: command`,
`type: automl` (read further by capc.jobfolder.automl_yaml) and `type: pipeline` (capc.jobfolder.pipeline_graph
reads its graph).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from capc.errors import CapcError, SpecInvalid, SpecProblem
from capc.jobfolder.kinds import FileKind, kind_of_mapping, schema_name
from capc.spec.loader import LoadedSpec, load_spec_file

RUNS_LOCALLY = (FileKind.COMMAND_JOB, FileKind.SWEEP_JOB, FileKind.AUTOML_JOB, FileKind.PIPELINE_JOB)
# azure-ai-ml logs "Class ...Schema: This is an experimental class" for schema classes its loader touches (a pipeline
# job's auto-delete and intellectual-property settings): notes to the SDK's own developers, not to capc's user.
SDK_EXPERIMENTAL_LOGGER = "azure.ai.ml._utils._experimental"


def quiet_sdk_experimental_notices() -> None:
    """Before capc loads a job YAML with azure-ai-ml (its loader, or to_rest for a dry run): no experimental notice."""
    import logging

    logging.getLogger(SDK_EXPERIMENTAL_LOGGER).setLevel(logging.ERROR)


@dataclass(frozen=True)
class JobYaml:
    path: Path
    data: dict
    sha256: str  # of the file's bytes and the overrides: one sweep study per version, as a spec's
    loaded: LoadedSpec  # line marks, for FILE:LINE messages
    overrides: tuple = ()
    mapped: tuple = ()  # capc.local.data_map.MappedInput: the remote inputs --data-map bound to local paths

    @property
    def type(self) -> str:
        return str(self.data.get("type", "command"))

    @property
    def kind(self) -> FileKind:
        """Job or component, and of which type (capc.jobfolder.kinds)."""
        return kind_of_mapping(self.data)

    @property
    def duplicate_notes(self) -> list[str]:
        """A note per key the file writes twice: azure-ai-ml's loader (and so Azure) reads the last one, and so does capc."""
        return [f"{'.'.join(map(str, key))} is written more than once (again at line {mark.line}): the last one counts, as "
                "azure-ai-ml reads it; the values before it are ignored, here and on Azure" for key, mark in self.loaded.duplicates]

    @property
    def job_dir(self) -> Path:
        return self.path.resolve().parent

    @property
    def name(self) -> str:
        """The experiment the runs are recorded under: experiment_name, else the file's name (Azure takes the
        working folder's name; the file's is more telling when several jobs lie in one folder)."""
        raw = str(self.data.get("experiment_name") or self.path.stem)
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-") or "job"


def load_job_yaml(path: Path, overrides: list[str] | None = None) -> JobYaml:
    """Read a job YAML with its line marks and apply --set overrides; raises SpecInvalid / CapcError."""
    from capc.spec.overrides import apply_overrides

    path = Path(path)
    loaded = load_spec_file(path, duplicate_keys="last")  # as azure-ai-ml reads it; duplicate_notes says so
    applied = apply_overrides(loaded, list(overrides or []))
    _paths_from_working_directory(loaded.data, applied)
    digest = hashlib.sha256(loaded.text)
    for key, value in applied:
        digest.update(f"\n--set {key}={json.dumps(value, sort_keys=True)}".encode())
    if not isinstance(loaded.data, dict):
        raise SpecInvalid([SpecProblem(str(path), 1, 1, "", "a job YAML is a mapping of keys to values")])
    return JobYaml(path, loaded.data, digest.hexdigest(), loaded, tuple(applied))


def _paths_from_working_directory(data: dict, applied: list) -> None:
    """An input path given with --set is relative to where the user typed it, not to the YAML's folder."""
    from capc.data_location import is_remote

    for key, value in applied:
        parts = key.split(".")  # inputs.X.path, or a pipeline step's: jobs.STEP.inputs.X.path
        if len(parts) >= 3 and parts[-3] == "inputs" and parts[-1] == "path" and isinstance(value, str) and value and not is_remote(value):
            local = value.removeprefix("file://")
            if not Path(local).is_absolute():
                node = data
                for part in parts[:-1]:
                    node = node[part]
                node["path"] = str(Path.cwd() / local)


def code_path(code, where: str) -> str:
    """A job's or component's `code:` as the path it must be (`file:` prefix dropped). The preview form
    `code: {local_path: ./src}` is refused naming the form Azure ML v2 takes: azure-ai-ml's loader refuses it too."""
    if isinstance(code, dict):
        local = code.get("local_path") or code.get("path")
        raise CapcError(f"{where}: `code` is a mapping ({json.dumps(code, default=str)}); Azure ML v2 takes the folder's path, "
                        "and azure-ai-ml's loader refuses this preview form too.", f"write `code: {local or './FOLDER'}`")
    return str(code).removeprefix("file:")


def check_runs_locally(job: JobYaml) -> None:
    """Refuse, with the reason and the way out, a file the local engine does not run."""
    kind = job.kind
    if kind in RUNS_LOCALLY:
        return
    if kind in (FileKind.SPARK_JOB, FileKind.PARALLEL_JOB, FileKind.SPARK_COMPONENT, FileKind.PARALLEL_COMPONENT):
        engine = "a Spark cluster" if "SPARK" in kind.name else "Azure's parallel-run agents on a cluster"
        where = (f"register it with `az ml component create -f {job.path}` and run the pipeline that uses it with "
                 "`az ml job create -f PIPELINE.yml`") if kind.is_component else f"submit it to Azure ML: `az ml job create -f {job.path}`"
        raise CapcError(f"{job.path} is a {kind.value}; it runs on {engine}, which the local engine does not have.", where)
    if kind.is_component:
        raise CapcError(
            f"{job.path} is a {kind.value}: a step that a pipeline job runs (`component: ./{job.path.name}`), not a "
            "job of its own; `capc validate` checks it with azure-ai-ml's component loader.",
            "submit the pipeline job that uses it, or a command job with the same command, code and inputs",
        )
    if kind is FileKind.CONDA_FILE:
        raise CapcError(f"{job.path} is a conda environment file, not a job.",
                        "name it in a job's environment (`conda_file:`); capc builds that environment when the job runs")
    group = AZ_ML_GROUPS.get(schema_name(job.data) or "")
    raise CapcError(
        f"{job.path} is an Azure ML file of another kind (its $schema: {job.data.get('$schema')}), not a job.",
        f"create it on Azure: `az ml {group} create -f {job.path}`" if group else "create it on Azure with the `az ml` command for its kind",
    )


# The `az ml` command group that creates each asset file, by the name in its $schema.
AZ_ML_GROUPS = {
    "amlcompute": "compute", "computeinstance": "compute", "environment": "environment", "data": "data", "model": "model",
    "managedonlineendpoint": "online-endpoint", "kubernetesonlineendpoint": "online-endpoint",
    "managedonlinedeployment": "online-deployment", "kubernetesonlinedeployment": "online-deployment",
    "batchendpoint": "batch-endpoint", "batchdeployment": "batch-deployment", "schedule": "schedule",
}
