"""Job folder stage: an Azure ML v2 job YAML written by hand (not by capc), read for `capc submit JOB.yml` and
`capc validate JOB.yml`.

Loaded with the spec loader's line marks (so problems point at FILE:LINE:COL) and with `--set key.path=value`
applied as `az ml job create --set` applies it. Paths in the file are relative to its folder, as Azure reads them.

What runs locally: `type: sweep` and `type: command`. `type: automl` written by hand and `type: pipeline` are
refused with the reason and what to do instead: capc's local AutoML runs the automl_job.yml that `capc build`
compiles with its data (a hand-written one names Azure data and settings capc has not checked), and a pipeline's
steps are components whose graph capc runs only for the pipelines it compiles.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from capc.errors import CapcError, SpecInvalid, SpecProblem
from capc.spec.loader import LoadedSpec, load_spec_file

JOB_TYPES = ("command", "sweep", "automl", "pipeline", "spark", "parallel")  # Azure ML v2 job types
RUNS_LOCALLY = ("command", "sweep")
JOB_SUFFIXES = (".yml", ".yaml")
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

    @property
    def type(self) -> str:
        return str(self.data.get("type", "command"))

    @property
    def job_dir(self) -> Path:
        return self.path.resolve().parent

    @property
    def name(self) -> str:
        """The experiment the runs are recorded under: experiment_name, else the file's name (Azure takes the
        working folder's name; the file's is more telling when several jobs lie in one folder)."""
        raw = str(self.data.get("experiment_name") or self.path.stem)
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-") or "job"

    @property
    def environment(self):
        trial = self.data.get("trial") if self.type == "sweep" else self.data
        return (trial or {}).get("environment") if isinstance(trial, dict) else None


def looks_like_job_yaml(path: Path) -> bool:
    """An Azure ML job file rather than a capc spec: a top-level `type` (specs have none) or a job $schema."""
    path = Path(path)
    if path.suffix.lower() not in JOB_SUFFIXES or not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return False
    if not isinstance(data, dict):
        return False
    schema = str(data.get("$schema", ""))
    return data.get("type") in JOB_TYPES or ("azuremlschemas" in schema and "Job.schema" in schema)


def load_job_yaml(path: Path, overrides: list[str] | None = None) -> JobYaml:
    """Read a job YAML with its line marks and apply --set overrides; raises SpecInvalid / CapcError."""
    from capc.spec.overrides import apply_overrides

    path = Path(path)
    loaded = load_spec_file(path)
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
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "inputs" and parts[2] == "path" and isinstance(value, str) and value and not is_remote(value):
            local = value.removeprefix("file://")
            if not Path(local).is_absolute():
                data["inputs"][parts[1]]["path"] = str(Path.cwd() / local)


def check_runs_locally(job: JobYaml) -> None:
    """Refuse, with the reason and the way out, a job type the local engine does not run."""
    kind = job.type
    if kind in RUNS_LOCALLY:
        return
    if kind == "automl":
        raise CapcError(
            f"{job.path} is an AutoML job written by hand; capc runs AutoML locally only from the automl_job.yml it "
            "compiles from a spec (whose data and settings it has checked).",
            "describe the use case in a capc spec (`capc schema` lists the keys) and `capc submit SPEC`, "
            "or submit this file to Azure with `az ml job create -f`",
        )
    if kind == "pipeline":
        raise CapcError(
            f"{job.path} is a pipeline job; capc runs locally only the pipelines it compiles (`capc submit SPEC "
            "--only pipeline`), not hand-written component graphs.",
            "run each command step as its own job (`capc submit STEP.yml` with type: command), or submit the "
            "pipeline to Azure with `az ml job create -f`",
        )
    raise CapcError(
        f"{job.path} is a job of type `{kind}`; the local engine runs sweep and command jobs.",
        "submit it to Azure with `az ml job create -f`",
    )
