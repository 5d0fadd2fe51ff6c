"""Shared by the test_serve_* modules: a small real bank-marketing model and a job folder with a score.py.

The model is tests/bank_models.py's (a scikit-learn Pipeline saved with mlflow.sklearn.save_model, trained on a few
hundred real rows); the job folder holds tests/serve/serve_assets/score.py (the generated-score contract) and a
sample_request.json, as generated/<name>/ would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bank_models import DATA, TARGET, bank_frame, save_model  # noqa: F401 - shared with tests/azure, named here too
from repo import SPECS

ASSETS = Path(__file__).resolve().parent / "serve_assets"
ENDPOINT_NAME = "bank"  # the endpoint the `endpoint` fixture deploys
BODY_LIMIT = 256 * 1024  # its request body limit, small enough for a test to pass it


def bank_records(rows: int, skip: int = 0) -> list[dict]:
    return bank_frame(rows, skip).drop(columns=TARGET).to_dict("records")


def registered_model(home: Path, name: str, version: int, **kwargs) -> Path:
    """A model laid out as the registry keeps it: $CAPC_HOME/registry/<name>/<version>/model."""
    target = home / "registry" / name / str(version) / "model"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_model(target, **kwargs)
    registration = {"name": name, "version": version, "source": "test fixture"}
    (target.parent / "registration.json").write_text(json.dumps(registration))
    return target


def job_dir(target: Path, score: Path = ASSETS / "score.py") -> Path:
    """generated/<name>/ as far as serving needs it: score.py and sample_request.json."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(score, target / "score.py")
    (target / "sample_request.json").write_text(json.dumps({"data": bank_records(2)}, indent=2))
    return target


def generated_job_dir(target: Path) -> Path | None:
    """generated/bankmarketing/ as `capc build specs/bankmarketing.yaml` writes it (the real score.py template);
    None while the build stage cannot produce it."""
    try:
        from capc.artifacts import write_tree
        from capc.build import compile_spec
        from capc.spec import load_spec

        spec = load_spec(SPECS / "bankmarketing.yaml")
        files = compile_spec(spec, target)
    except ImportError:
        return None
    if "score.py" not in files:
        return None
    write_tree(target / spec.name, files)
    return target / spec.name


def job_for(source: str, target: Path) -> Path:
    """The job folder of a test run: "fixture" (tests/serve/serve_assets/score.py) or "generated" (capc build's)."""
    if source == "fixture":
        return job_dir(target)
    built = generated_job_dir(target)
    assert built is not None, "capc build generated no score.py"
    return built
