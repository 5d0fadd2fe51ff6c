"""State stage: the local model registry (versions, lookups, refusals) and the per-spec-version run lock."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from capc.errors import CapcError
from capc.state import locks, registry

RECORD = dict(task="classification", metric="accuracy", value=0.9, goal="maximize", source="automl", run_id="r1",
              spec_sha256="ab" * 32, job_dir="generated/m")


def mlflow_dir(tmp_path, name="model"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "model.pkl").write_bytes(b"weights")
    return folder


def test_versions_count_up_and_each_keeps_its_files_and_record(workdir, tmp_path):
    first = registry.register(mlflow_dir(tmp_path), name="m", **RECORD)
    second = registry.register(mlflow_dir(tmp_path, "other"), name="m", **{**RECORD, "value": 0.95})
    assert (first.version, second.version) == (1, 2)
    assert (second.model_dir / "model.pkl").read_bytes() == b"weights"
    assert registry.get("m").ref == "m:2" and registry.get("m:1").value == 0.9
    stored = json.loads((second.model_dir.parent / registry.REGISTRATION).read_text())
    assert stored["value"] == 0.95 and stored["version"] == 2
    assert [m.ref for m in registry.list_models()] == ["m:1", "m:2"]


def test_a_folder_without_mlmodel_is_refused_and_nothing_is_registered(workdir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CapcError, match="not an MLflow model directory"):
        registry.register(tmp_path / "empty", name="m", **RECORD)
    assert registry.list_models() == []


def test_lookups_of_missing_models_and_versions_name_what_exists(workdir, tmp_path):
    with pytest.raises(CapcError) as none:
        registry.get("nothing")
    assert "capc submit" in none.value.hint
    registry.register(mlflow_dir(tmp_path), name="m", **RECORD)
    with pytest.raises(CapcError, match="no version 7") as missing:
        registry.get("m:7")
    assert "versions: 1" in missing.value.hint
    with pytest.raises(CapcError) as other:
        registry.get("n")
    assert "registered models: m" in other.value.hint


def test_a_spec_version_is_locked_against_a_second_process(workdir):
    holder = "\n".join([
        "import sys, time",
        "from capc.state import locks",
        "with locks.spec_lock('m', 'ab' * 32):",
        "    print('held', flush=True)",
        "    sys.stdin.readline()",
    ])
    process = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        with pytest.raises(CapcError, match=f"pid {process.pid}"):
            with locks.spec_lock("m", "ab" * 32):
                pass
        with locks.spec_lock("m", "cd" * 32):  # another version of the spec is free
            pass
    finally:
        process.communicate("\n", timeout=30)
    with locks.spec_lock("m", "ab" * 32):  # released when the holder ended
        pass
