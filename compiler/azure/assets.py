"""Backend, Azure: the workspace assets the jobs need - plan them offline, then create what is missing.

`plan_assets` reads the job folder and the local data (no network, no azure.ai.ml): the compute clusters, the
training data as data assets and the environment, each versioned by a hash of its content, so a second submit of
the same files finds everything in place and creates nothing. `ensure_assets` makes it so in the workspace.

Data staging: the generated MLTable reads the spec's data file in place (a relative path leaving data/), which an
upload of data/ alone would lose. So the MLTable is uploaded from a staging folder holding the MLTable rewritten
to the file's basename plus the file itself. An image MLTable (JSON lines of image_url, label) points at images
the same way: the images go up first as a uri_folder asset, then the JSON lines are rewritten to their datastore
URLs (the form Azure's AutoML image docs use) and the MLTable goes up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from capc.jobfolder import ComputeCluster, JobFolder
from capc.jobfolder.data import MLTABLE, read_mltable
from capc.jobfolder.folder import load_yaml_mapping
from capc.jobfolder.serving import environment_files
from capc.data_location import is_remote
from capc.errors import CapcError

VERSION_CHARS = 16  # hex digits of the content hash used as an asset version
PATH_KEYS = ("file", "folder")


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ComputeTarget:
    """A cluster the jobs run on; size None: capc only checks it exists (nothing describes it). The settings are
    the job folder's compute.yml (the spec's compute section, its defaults filled from the schema)."""

    name: str
    size: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    idle_time_before_scale_down: int | None = None

    @property
    def described(self) -> bool:
        return self.size is not None

    def summary(self) -> str:
        if not self.described:
            return "must already exist (no settings in the spec)"
        return (
            f"AmlCompute {self.size}, {self.min_instances}-{self.max_instances} nodes, "
            f"scale down after {self.idle_time_before_scale_down} s idle"
        )


@dataclass
class DataAsset:
    """A data asset version; `files` is what gets uploaded (relative path -> local file or bytes)."""

    name: str
    version: str
    type: str  # "mltable" | "uri_file" | "uri_folder"
    source: Path  # the local file or folder it stands for
    files: dict[str, Path | bytes] = field(repr=False)
    description: str = ""
    images: DataAsset | None = None  # image MLTable: the folder its JSON lines point into
    image_lines: dict[str, list[dict]] = field(default_factory=dict, repr=False)  # jsonl name -> rows
    image_root: Path | None = None
    stream_columns: list[str] = field(default_factory=list)  # image MLTable: columns holding image URLs
    datastore_path: str | None = None  # set once it exists in the workspace

    @property
    def ref(self) -> str:
        return f"azureml:{self.name}:{self.version}"

    @property
    def size(self) -> int:
        return sum(len(v) if isinstance(v, bytes) else v.stat().st_size for v in self.files.values())

    def summary(self) -> str:
        names = sorted(self.files)
        shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
        return f"{self.type}: {shown}; {self.size:,} bytes"


@dataclass(frozen=True)
class EnvironmentAsset:
    name: str
    version: str
    yml: Path
    image: str
    conda_file: Path | None

    @property
    def ref(self) -> str:
        return f"azureml:{self.name}:{self.version}"

    def summary(self) -> str:
        conda = f" + {self.conda_file.name}" if self.conda_file else ""
        return f"image {self.image}{conda}"


@dataclass
class AssetPlan:
    computes: list[ComputeTarget]
    data: list[DataAsset]  # creation order: an image folder before the MLTable that points into it
    environment: EnvironmentAsset | None
    inputs: dict[str, dict[str, DataAsset]]  # job kind -> input name -> asset (automl: "training_data")
    code: dict[str, Path]  # job kind -> code folder azure-ai-ml uploads when the job is submitted


@dataclass(frozen=True)
class AssetAction:
    """What `ensure_assets` did with one asset: created | updated | exists | checked."""

    kind: str
    name: str
    version: str
    action: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "version": self.version, "action": self.action}


def plan_assets(folder: JobFolder) -> AssetPlan:
    """Everything the jobs of `folder` need in the workspace, with content-hash versions. Reads local files only."""
    computes = [_compute_target(name, folder.cluster) for name in folder.computes]
    planner = _DataPlanner(folder)
    inputs: dict[str, dict[str, DataAsset]] = {}
    code: dict[str, Path] = {}
    for job in folder.jobs:
        if job.kind == "automl":
            training = job.data.get("training_data") or {}
            asset = planner.local_input(training, "automl training_data")
            if asset:
                inputs.setdefault("automl", {})["training_data"] = asset
        else:
            for input_name, spec in (job.data.get("inputs") or {}).items():
                asset = planner.local_input(spec, f"{job.kind} input {input_name}")
                if asset:
                    inputs.setdefault(job.kind, {})[input_name] = asset
            trial = job.data.get("trial") or {}
            if isinstance(trial.get("code"), str) and not is_remote(trial["code"]):
                code[job.kind] = (job.path.parent / trial["code"]).resolve()
            for step, folder_path in _pipeline_code(job.path.parent, job.data.get("jobs") or {}):
                code[f"{job.kind} step {step}"] = folder_path
    return AssetPlan(computes, planner.assets, environment_asset(folder.path, folder.name), inputs, code)


def _pipeline_code(base: Path, steps: Mapping) -> list[tuple[str, Path]]:
    """Local code folders of a pipeline's steps (a step's own `code`, or its trial component file's)."""
    found = []
    for step, spec in steps.items():
        if not isinstance(spec, Mapping):
            continue
        code, where = spec.get("code"), base
        trial = spec.get("trial")
        if code is None and isinstance(trial, str) and (base / trial).is_file():
            component = load_yaml_mapping(base / trial)
            code, where = component.get("code"), (base / trial).parent
        if isinstance(code, str) and not is_remote(code):
            found.append((step, (where / code).resolve()))
    return found


# ---------------------------------------------------------------- compute


def _compute_target(name: str, cluster: ComputeCluster | None) -> ComputeTarget:
    """The cluster compute.yml describes is created or updated; any other compute a job names must exist."""
    if cluster is not None and cluster.name == name:
        return ComputeTarget(name, cluster.size, cluster.min_instances, cluster.max_instances, cluster.idle_time_before_scale_down)
    return ComputeTarget(name)


# ---------------------------------------------------------------- environment


def environment_asset(job_dir: Path, spec_name: str) -> EnvironmentAsset | None:
    """The environment of environment.yml (+ its conda file), versioned by their content; None without one."""
    files = environment_files(job_dir)
    if files is None:
        return None
    parts: dict[str, Path | bytes] = dict(files.files)
    name = files.name or f"{spec_name}-env"
    return EnvironmentAsset(name, content_version(parts), files.path, files.image, files.conda_path)


# ---------------------------------------------------------------- data


class _DataPlanner:
    """Turns the jobs' local inputs into data assets, one per local source and type."""

    def __init__(self, folder: JobFolder):
        self.folder = folder
        self.assets: list[DataAsset] = []

    def local_input(self, spec, where: str) -> DataAsset | None:
        if not isinstance(spec, Mapping):
            return None
        path, kind = spec.get("path"), spec.get("type", "uri_folder")
        if not isinstance(path, str) or is_remote(path):
            return None  # a registered asset or a URL: nothing to upload
        base = self.folder.path  # job YAML paths are relative to the YAML's folder
        source = Path(os.path.normpath(base / path))
        if not source.exists():
            raise CapcError(f"the {where} path {path} (from {base}) does not exist.", "build again where the data lies, or fix dataset.path in the spec")
        for asset in self.assets:
            if asset.source == source and asset.type == kind:
                return asset
        if kind == "mltable":
            return self._mltable(source)
        if kind == "uri_file":
            return self._add(DataAsset(f"{self.folder.name}-training-file", "", "uri_file", source, {source.name: source},
                                       f"Training data of {self.folder.name} ({source.name}), uploaded by capc"))
        if kind == "uri_folder":
            return self._folder(source, f"{self.folder.name}-training-folder")
        raise CapcError(f"the {where} has type {kind}, which capc cannot upload.", "use uri_file, uri_folder or mltable")

    def _add(self, asset: DataAsset) -> DataAsset:
        if not asset.version:
            asset.version = content_version(asset.files)
        self.assets.append(asset)
        return asset

    def _folder(self, source: Path, name: str) -> DataAsset:
        for asset in self.assets:
            if asset.source == source and asset.type == "uri_folder":
                return asset
        files = {p.relative_to(source).as_posix(): p for p in sorted(source.rglob("*")) if p.is_file()}
        if not files:
            raise CapcError(f"the data folder {source} is empty.", "check dataset.path in the spec")
        return self._add(DataAsset(name, "", "uri_folder", source, files, f"Data of {self.folder.name} ({source.name}/), uploaded by capc"))

    def _mltable(self, data_dir: Path) -> DataAsset:
        mltable_path = data_dir / MLTABLE
        if not mltable_path.is_file():
            raise CapcError(f"{data_dir} has no MLTable file.", "run `capc build` again")
        table = read_mltable(data_dir)
        stream_columns = _stream_columns(table)
        files: dict[str, Path | bytes] = {}
        image_lines: dict[str, list[dict]] = {}
        rewritten_paths = []
        for entry in table.get("paths") or []:
            key = next((k for k in PATH_KEYS if k in entry), None)
            if key is None:
                raise CapcError(f"{mltable_path}: capc can upload `file` and `folder` paths only, not {sorted(entry)}.")
            value = str(entry[key])
            if is_remote(value):
                rewritten_paths.append(entry)
                continue
            local = Path(os.path.normpath(data_dir / value))
            if not local.exists():
                raise CapcError(f"{mltable_path} reads {value}, which does not exist ({local}).", "build again where the data lies")
            staged = _unique_name(local.name, files)
            if stream_columns and local.is_file() and local.suffix.lower() in (".jsonl", ".json"):
                image_lines[staged] = _read_json_lines(local)
                files[staged] = local  # hashed as is; rewritten to datastore URLs at upload
            elif local.is_dir():
                for p in sorted(local.rglob("*")):
                    if p.is_file():
                        files[f"{staged}/{p.relative_to(local).as_posix()}"] = p
            else:
                files[staged] = local
            rewritten_paths.append({**entry, key: f"./{staged}"})
        images = None
        image_root = None
        if image_lines:
            image_root = _image_root(image_lines, data_dir, stream_columns)
            images = self._folder(image_root, f"{self.folder.name}-images")
            for staged, rows in image_lines.items():  # hash what is uploaded, not where the build lies
                files[staged] = _json_lines(_rows_with_urls(rows, stream_columns, data_dir, image_root, "."))
        staged_table = {**table, "paths": rewritten_paths}
        files = {MLTABLE: yaml.safe_dump(staged_table, sort_keys=False, allow_unicode=True).encode("utf-8"), **files}
        hashed = dict(files)
        if images is not None:
            hashed[".images-version"] = images.version.encode()
        asset = DataAsset(
            f"{self.folder.name}-training", content_version(hashed), "mltable", data_dir, files,
            f"Training table of {self.folder.name}, uploaded by capc", images, image_lines, image_root, stream_columns,
        )
        return self._add(asset)


def _stream_columns(table: Mapping) -> list[str]:
    """Columns an MLTable converts to stream_info (image URLs)."""
    columns: list[str] = []
    for step in table.get("transformations") or []:
        if isinstance(step, Mapping) and "convert_column_types" in step:
            for conversion in step["convert_column_types"] or []:
                if conversion.get("column_type") == "stream_info":
                    named = conversion.get("columns")
                    columns.extend([named] if isinstance(named, str) else list(named or []))
    return columns


def _read_json_lines(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CapcError(f"{path}:{number}: not a JSON line ({exc.msg}).", "run `capc build` again") from None
    return rows


def _image_root(image_lines: dict[str, list[dict]], data_dir: Path, columns: list[str]) -> Path:
    """The deepest folder holding every image the JSON lines point at (uploaded as one uri_folder)."""
    local = []
    for rows in image_lines.values():
        for row in rows:
            for column in columns:
                value = row.get(column)
                if isinstance(value, str) and not is_remote(value):
                    path = Path(os.path.normpath(data_dir / value))
                    if not path.is_file():
                        raise CapcError(f"the image table points at {value}, which does not exist ({path}).", "build again where the data lies")
                    local.append(path)
    if not local:
        raise CapcError(f"the image table in {data_dir} lists no local images.")
    return Path(os.path.commonpath([str(p.parent) for p in local]))


def stage_mltable(asset: DataAsset, into: Path, workspace=None) -> Path:
    """Write the MLTable folder to upload: MLTable, its data files, JSON lines pointing at the uploaded images."""
    folder = into / asset.name
    folder.mkdir(parents=True)
    for rel, content in asset.files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in asset.image_lines:
            target.write_text(_rewritten_lines(asset, rel, workspace), encoding="utf-8")
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copyfile(content, target)
    return folder


def _rewritten_lines(asset: DataAsset, rel: str, workspace) -> str:
    if asset.images is None or not asset.images.datastore_path:
        raise CapcError(f"the images of {asset.name} must be uploaded before its table.")  # capc bug guard
    base = long_datastore_uri(asset.images.datastore_path, workspace)
    return _json_lines(_rows_with_urls(asset.image_lines[rel], asset.stream_columns, asset.source, asset.image_root, base)).decode("utf-8")


def _rows_with_urls(rows: list[dict], columns: list[str], data_dir: Path, image_root: Path, base: str) -> list[dict]:
    """The JSON lines with each local image path replaced by base/<path under the image folder>."""
    out = []
    for row in rows:
        row = dict(row)
        for column in columns:
            value = row.get(column)
            if isinstance(value, str) and not is_remote(value):
                image = Path(os.path.normpath(data_dir / value))
                row[column] = f"{base}/{image.relative_to(image_root).as_posix()}"
        out.append(row)
    return out


def _json_lines(rows: list[dict]) -> bytes:
    return ("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n").encode("utf-8")


def long_datastore_uri(short: str, workspace) -> str:
    """azureml://datastores/D/paths/P -> azureml://subscriptions/S/resourcegroups/R/workspaces/W/datastores/D/paths/P."""
    short = short.rstrip("/")
    prefix = "azureml://datastores/"
    if not short.startswith(prefix) or workspace is None:
        return short
    return (
        f"azureml://subscriptions/{workspace.subscription_id}/resourcegroups/{workspace.resource_group}"
        f"/workspaces/{workspace.workspace_name}/datastores/{short[len(prefix):]}"
    )


def _unique_name(name: str, taken: Mapping) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{n}-{name}"
    return candidate


def content_version(parts: Mapping[str, Path | bytes]) -> str:
    """A version string from content: sha256 over (relative path, sha256 of bytes), sorted by path."""
    digest = hashlib.sha256()
    for rel in sorted(parts):
        value = parts[rel]
        content_hash = hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else _file_sha256(value)
        digest.update(f"{rel}\0{content_hash}\n".encode())
    return digest.hexdigest()[:VERSION_CHARS]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- making it so (online)


def ensure_assets(ml_client, plan: AssetPlan, workspace, say=None) -> list[AssetAction]:
    """Create what is missing, update what differs, touch nothing else. Returns what was done."""
    say = say or (lambda text: None)
    actions = [ensure_compute(ml_client, target, workspace, say) for target in plan.computes]
    with tempfile.TemporaryDirectory(prefix="capc-upload-") as staging:
        for asset in plan.data:
            actions.append(ensure_data(ml_client, asset, Path(staging), workspace, say))
    if plan.environment is not None:
        actions.append(ensure_environment(ml_client, plan.environment, workspace, say))
    return actions


def ensure_compute(ml_client, target: ComputeTarget, workspace, say) -> AssetAction:
    from azure.ai.ml.entities import AmlCompute
    from azure.core.exceptions import ResourceNotFoundError

    from capc.azure.failures import azure_errors

    with azure_errors(f"read compute '{target.name}'", workspace):
        try:
            existing = ml_client.compute.get(target.name)
        except ResourceNotFoundError:
            existing = None
    if existing is None and not target.described:
        raise CapcError(
            f"the jobs run on compute '{target.name}', which does not exist in {workspace.describe()}.",
            "create it in Azure ML studio (Compute > Compute clusters) or set compute.name in the spec to an existing cluster",
        )
    if existing is not None:
        kind = str(getattr(existing, "type", "") or "").lower()
        if kind != "amlcompute":
            raise CapcError(
                f"the compute name '{target.name}' is taken in {workspace.describe()} by a {kind or 'non-cluster'} compute, not a compute cluster.",
                "choose another compute.name in the spec",
            )
        if not target.described:
            return AssetAction("compute", target.name, "", "checked")
        size = str(getattr(existing, "size", "") or "")
        if size.lower() != target.size.lower():
            raise CapcError(
                f"the compute cluster '{target.name}' already exists in {workspace.describe()} with VM size {size}, "
                f"but the spec asks for {target.size}; Azure cannot resize a cluster.",
                f"set compute.size to {size} or choose another compute.name in the spec (or delete the cluster in Azure ML studio)",
            )
        current = (existing.min_instances, existing.max_instances, existing.idle_time_before_scale_down)
        wanted = (target.min_instances, target.max_instances, target.idle_time_before_scale_down)
        if tuple(int(v or 0) for v in current) == wanted:
            return AssetAction("compute", target.name, "", "exists")
    cluster = AmlCompute(
        name=target.name,
        size=target.size,
        min_instances=target.min_instances,
        max_instances=target.max_instances,
        idle_time_before_scale_down=target.idle_time_before_scale_down,
    )
    action = "updated" if existing is not None else "created"
    say(f"{'updating' if existing is not None else 'creating'} compute cluster {target.name} ({target.summary()})")
    with azure_errors(f"{'update' if existing is not None else 'create'} compute cluster '{target.name}'", workspace):
        ml_client.compute.begin_create_or_update(cluster).result()
    return AssetAction("compute", target.name, "", action)


def ensure_data(ml_client, asset: DataAsset, staging: Path, workspace, say) -> AssetAction:
    from azure.ai.ml.entities import Data
    from azure.core.exceptions import ResourceNotFoundError

    from capc.azure.failures import azure_errors
    from capc.azure.workspace import quiet_sdk_output

    with azure_errors(f"read data asset {asset.name}:{asset.version}", workspace):
        try:
            existing = ml_client.data.get(asset.name, version=asset.version)
        except ResourceNotFoundError:
            existing = None
    if existing is not None:
        asset.datastore_path = str(existing.path)
        return AssetAction("data", asset.name, asset.version, "exists")
    if asset.type == "mltable":
        local = stage_mltable(asset, staging, workspace)
    else:
        local = asset.source
    say(f"uploading data asset {asset.name}:{asset.version} ({asset.summary()})")
    data = Data(name=asset.name, version=asset.version, type=asset.type, path=str(local), description=asset.description)
    with azure_errors(f"upload data asset {asset.name}:{asset.version}", workspace), quiet_sdk_output():
        created = ml_client.data.create_or_update(data)
    asset.datastore_path = str(created.path)
    return AssetAction("data", asset.name, asset.version, "created")


def ensure_environment(ml_client, env: EnvironmentAsset, workspace, say) -> AssetAction:
    from azure.ai.ml import load_environment
    from azure.core.exceptions import ResourceNotFoundError

    from capc.azure.failures import azure_errors

    with azure_errors(f"read environment {env.name}:{env.version}", workspace):
        try:
            ml_client.environments.get(env.name, version=env.version)
            return AssetAction("environment", env.name, env.version, "exists")
        except ResourceNotFoundError:
            pass
    with azure_errors(f"load {env.yml}", workspace):
        environment = load_environment(source=env.yml)
    environment.version = env.version
    say(f"creating environment {env.name}:{env.version} ({env.summary()})")
    with azure_errors(f"create environment {env.name}:{env.version}", workspace):
        ml_client.environments.create_or_update(environment)
    return AssetAction("environment", env.name, env.version, "created")
