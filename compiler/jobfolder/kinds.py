"""Job folder stage: what a YAML file is - a capc spec, an Azure ML job of some type, or an Azure ML component -
read from its content (`$schema`, `type:`, a top-level `command:`), never from its suffix.

Azure ML itself learns the kind from the command (`az ml job create` vs `az ml component create`); a file handed
to capc carries it in its `$schema` when it has one (commandJob.schema.json, commandComponent.schema.json, ...).
Without one, `type:` names the job type, and the keys only a component has (`version`, `is_deterministic`,
`additional_includes`) or only a job has (`compute`, `experiment_name`, ...) tell a component from a job of the
same type. A file with neither `$schema` nor `type:` but a top-level `command:` is a command job: `command` is
Azure's default job type; one with a `dependencies:` list is a conda file. Anything else is a capc spec (the spec
loader says what it lacks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from pathlib import Path

import yaml


class FileKind(str, Enum):
    SPEC = "capc spec"
    COMMAND_JOB = "command job"
    SWEEP_JOB = "sweep job"
    AUTOML_JOB = "AutoML job"
    PIPELINE_JOB = "pipeline job"
    PARALLEL_JOB = "parallel job"
    SPARK_JOB = "Spark job"
    COMMAND_COMPONENT = "command component"
    PIPELINE_COMPONENT = "pipeline component"
    PARALLEL_COMPONENT = "parallel component"
    SPARK_COMPONENT = "Spark component"
    OTHER_AZURE = "Azure ML asset"  # an environment, data, model, compute or endpoint file: neither job nor component
    CONDA_FILE = "conda environment file"  # what an environment's conda_file names (`dependencies:`)
    UNREADABLE = "unreadable"  # not a file, not YAML, or not a mapping: the spec loader reports why

    @property
    def is_job(self) -> bool:
        return self.name.endswith("_JOB")

    @property
    def is_component(self) -> bool:
        return self.name.endswith("_COMPONENT")

    @property
    def is_azure(self) -> bool:
        """A file for Azure ML (job, component, asset or an environment's conda file), not for capc's spec loader."""
        return self.is_job or self.is_component or self in (FileKind.OTHER_AZURE, FileKind.CONDA_FILE)


JOBS = {"command": FileKind.COMMAND_JOB, "sweep": FileKind.SWEEP_JOB, "automl": FileKind.AUTOML_JOB,
        "pipeline": FileKind.PIPELINE_JOB, "parallel": FileKind.PARALLEL_JOB, "spark": FileKind.SPARK_JOB}
COMPONENTS = {"command": FileKind.COMMAND_COMPONENT, "pipeline": FileKind.PIPELINE_COMPONENT,
              "parallel": FileKind.PARALLEL_COMPONENT, "spark": FileKind.SPARK_COMPONENT}
# Keys azure-ai-ml's component schemas take and its job schemas do not, and the reverse (CommandComponentSchema
# against CommandJobSchema, PipelineComponentSchema against PipelineJobSchema, azure-ai-ml 1.35).
COMPONENT_ONLY_KEYS = ("version", "is_deterministic", "additional_includes")
JOB_ONLY_KEYS = ("compute", "experiment_name", "limits", "services", "identity", "settings", "component", "parent_job_name")
SPEC_KEYS = ("task", "dataset", "metric")  # a capc spec's required keys
# $schema file names: .../latest/commandJob.schema.json -> ("command", "job"); autoMLJob, sweepJob, sparkComponent...
# AutoML's schemas name the task too: autoMLJob, autoMLImageClassificationJob, autoMLTextNERJob...
_SCHEMA_NAME = re.compile(r"(command|sweep|automl\w*?|pipeline|parallel|spark)(job|component)\.schema\.json$", re.IGNORECASE)
_ANY_SCHEMA_NAME = re.compile(r"([A-Za-z]+)\.schema\.json$")


def kind_of_mapping(data) -> FileKind:
    """The kind of a loaded YAML document (see the module docstring for the rules)."""
    if not isinstance(data, Mapping):
        return FileKind.UNREADABLE
    schema = str(data.get("$schema") or "")
    named = _SCHEMA_NAME.search(schema)
    if named:
        job_type, what = named.group(1).lower(), named.group(2).lower()
        job_type = "automl" if job_type.startswith("automl") else job_type
        return (COMPONENTS if what == "component" and job_type in COMPONENTS else JOBS)[job_type]
    if "azuremlschemas" in schema.lower() or "azureml" in schema.lower() and schema.endswith(".schema.json"):
        return FileKind.OTHER_AZURE
    job_type = data.get("type")
    if isinstance(job_type, str) and job_type in JOBS:
        looks_like_component = any(k in data for k in COMPONENT_ONLY_KEYS) and not any(k in data for k in JOB_ONLY_KEYS)
        if job_type in COMPONENTS and looks_like_component:
            return COMPONENTS[job_type]
        return JOBS[job_type]
    if "type" not in data and "command" in data:
        return FileKind.COMMAND_JOB  # Azure's default job type
    if isinstance(data.get("dependencies"), list) and not any(k in data for k in SPEC_KEYS):
        return FileKind.CONDA_FILE
    return FileKind.SPEC


def schema_name(data) -> str | None:
    """The name in a file's `$schema` URL, lower-case (`.../latest/amlCompute.schema.json` -> "amlcompute")."""
    found = _ANY_SCHEMA_NAME.search(str(data.get("$schema") or "")) if isinstance(data, Mapping) else None
    return found.group(1).lower() if found else None


def file_kind(path: Path) -> FileKind:
    """The kind of the file at `path` from its content; UNREADABLE when it is not a readable YAML mapping."""
    path = Path(path)
    if not path.is_file():
        return FileKind.UNREADABLE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return FileKind.UNREADABLE
    return kind_of_mapping(data)


def is_azure_file(path: Path) -> bool:
    """An Azure ML job, component or asset file rather than a capc spec (or a folder)."""
    return file_kind(path).is_azure
