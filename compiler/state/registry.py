"""Shared state: the model registry under $CAPC_HOME/registry/<name>/<version>/.

Each version holds `model/` (an MLflow model directory) and `registration.json`. Versions are allocated with
os.mkdir, which is atomic, so concurrent submits sharing one $CAPC_HOME never take the same number; a version
becomes visible only once registration.json exists (written last, by rename).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from capc.artifacts import atomic_write_bytes
from capc.errors import CapcError
from capc.state.home import capc_home

REGISTRATION = "registration.json"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    task: str
    metric: str
    value: float
    goal: str
    source: str  # "automl" | "sweep"
    run_id: str
    spec_sha256: str
    job_dir: str  # generated/<name>/ the model was trained from (score.py, sample_request.json)
    created: str
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    description: str = ""
    selection: dict = field(default_factory=dict)  # how it was chosen: budgets, its figures, each better candidate passed over

    @property
    def model_dir(self) -> Path:
        return registry_root() / self.name / str(self.version) / "model"

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict:
        return {**asdict(self), "model_dir": str(self.model_dir)}


def registry_root() -> Path:
    return capc_home() / "registry"


def register(model_dir: Path, **record) -> ModelVersion:
    """Copy an MLflow model directory into the registry under the next free version."""
    if not (model_dir / "MLmodel").is_file():
        raise CapcError(f"cannot register {model_dir}: it is not an MLflow model directory (no MLmodel file)")
    folder = registry_root() / record["name"]
    folder.mkdir(parents=True, exist_ok=True)
    version = max(_numbers(folder), default=0) + 1
    while True:
        try:
            (folder / str(version)).mkdir()
            break
        except FileExistsError:
            version += 1
    target = folder / str(version)
    shutil.copytree(model_dir, target / "model")
    entry = ModelVersion(version=version, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record)
    atomic_write_bytes(target / REGISTRATION, (json.dumps(asdict(entry), indent=2, sort_keys=True) + "\n").encode())
    return entry


def list_models(name: str | None = None) -> list[ModelVersion]:
    root = registry_root()
    if not root.is_dir():
        return []
    names = [name] if name else sorted(p.name for p in root.iterdir() if p.is_dir())
    out = []
    for model in names:
        for version in sorted(_numbers(root / model)):
            entry = _read(root / model / str(version))
            if entry:
                out.append(entry)
    return out


def get(ref: str) -> ModelVersion:
    """NAME (latest version) or NAME:VERSION; a clear error when absent."""
    name, _, version = ref.partition(":")
    versions = list_models(name)
    if not versions:
        known = sorted({m.name for m in list_models()})
        hint = f"registered models: {', '.join(known)}" if known else "run `capc submit SPEC` first to train and register one"
        raise CapcError(f"no registered model named `{name}` in {registry_root()}.", hint)
    if not version:
        return versions[-1]
    for entry in versions:
        if str(entry.version) == version:
            return entry
    raise CapcError(f"model `{name}` has no version {version}.", f"versions: {', '.join(str(v.version) for v in versions)}")


def _numbers(folder: Path) -> list[int]:
    return [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []


def _read(folder: Path) -> ModelVersion | None:
    try:
        data = json.loads((folder / REGISTRATION).read_text())
    except FileNotFoundError:
        return None  # being registered right now, or abandoned half-way
    return ModelVersion(**data)
