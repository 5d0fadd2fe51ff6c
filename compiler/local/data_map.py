"""Backend, local: `--data-map FILE` - remote data named once, bound wherever a job names it.

A data map is a YAML mapping of remote URI to local path:

    wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv: ./data/iris.csv
    azureml://datastores/workspaceblobstore/paths/bank/: /data/bank/
    azureml:bank-marketing-train:1: ./data/train

Local paths are relative to the map file's folder. Every `path:` in a loaded job - a job's inputs, a pipeline's
inputs, each step's inputs at any depth, a component's, AutoML's training_data/validation_data/test_data - that
names a mapped URI is replaced by its local path. A URI under a mapped folder (the map key ends with `/`) maps to
the same place under the local folder. What stays remote is refused later, as before, naming --data-map too.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from capc.errors import CapcError
from capc.data_location import is_remote


@dataclass(frozen=True)
class MappedInput:
    key_path: str  # where in the job: jobs.train.inputs.data.path
    uri: str
    local: str


def read_data_map(path: Path) -> dict[str, str]:
    """The map file as {remote URI: absolute local path}; CapcError for a file that is not such a mapping."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CapcError(f"cannot read the data map {path}: {exc}") from None
    if content is None:
        return {}
    if not isinstance(content, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in content.items()):
        raise CapcError(f"{path}: a data map is a YAML mapping of remote URI to local path (`wasbs://.../iris.csv: ./iris.csv`).")
    not_remote = [k for k in content if not is_remote(k)]
    if not_remote:
        raise CapcError(f"{path}: {', '.join(not_remote)} is not a remote URI (azureml:, https://, wasbs://, abfss://, ...).",
                        "a data map's keys are the URIs the job names; its values are paths on this machine")
    return {uri: str((path.resolve().parent / local.removeprefix("file://")).resolve()) for uri, local in content.items()}


def local_path_for(uri: str, data_map: Mapping[str, str]) -> str | None:
    """The local path `uri` maps to: its own entry, else the longest mapped folder it lies under."""
    if uri in data_map:
        return data_map[uri]
    stripped = uri.rstrip("/")
    for key, local in data_map.items():
        if key.rstrip("/") == stripped:
            return local
    folders = [k for k in data_map if uri.startswith(k.rstrip("/") + "/")]
    if not folders:
        return None
    folder = max(folders, key=len)
    rest = uri[len(folder.rstrip("/")) + 1:]
    return str(Path(data_map[folder]) / rest)


def apply_data_map(job, data_map: Mapping[str, str], where: str = "") -> list[MappedInput]:
    """Replace, in place, every `path:` of `job` (a loaded job or component mapping, at any depth) that names a
    mapped URI with its local path; the bindings made, in document order. CapcError when a mapped local path does
    not exist."""
    mapped: list[MappedInput] = []
    if not data_map:
        return mapped
    _walk(job, where, data_map, mapped)
    missing = [m for m in mapped if not Path(m.local).exists()]
    if missing:
        first = missing[0]
        raise CapcError(f"the data map binds {first.key_path} ({first.uri}) to {first.local}, which does not exist"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "") + ".",
                        "fix the local path in the data map (relative paths are read from the map file's folder)")
    return mapped


def bind_job_data(job, data_map: Mapping[str, str]):
    """A loaded JobYaml (capc.jobfolder.job_yaml) with the remote inputs `data_map` names bound, the bindings in
    its `mapped`; its sha256 covers them, so --resume of a sweep on other data starts afresh."""
    mapped = apply_data_map(job.data, data_map)
    if not mapped:
        return job
    digest = hashlib.sha256(job.sha256.encode())
    for binding in mapped:
        digest.update(f"\n--data-map {binding.key_path}={binding.local}".encode())
    return dataclasses.replace(job, sha256=digest.hexdigest(), mapped=tuple(mapped))


def _walk(node, where: str, data_map: Mapping[str, str], mapped: list[MappedInput]) -> None:
    if isinstance(node, dict):
        path = node.get("path")
        if isinstance(path, str) and is_remote(path):
            local = local_path_for(path, data_map)
            if local is not None:
                node["path"] = local
                mapped.append(MappedInput(f"{where}.path".lstrip("."), path, local))
        for key, value in node.items():
            if key != "path":
                _walk(value, f"{where}.{key}", data_map, mapped)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _walk(value, f"{where}[{index}]", data_map, mapped)
