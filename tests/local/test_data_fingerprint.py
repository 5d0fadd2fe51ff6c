"""Data fingerprints (capc.state.fingerprint) and the data-change report before a submit and in `capc plan`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capc.state import fingerprint, registry
from capc.state.fingerprint import compare, fingerprint_data

BASE = "age,job,balance,y\n30,admin,100,no\n41,technician,250,yes\n52,admin,-20,no\n"


def _table(folder: Path, text: str, name: str = "bank.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_fingerprint_records_hash_rows_columns_and_schema(tmp_path):
    found = fingerprint_data(_table(tmp_path, BASE), "csv")
    assert (found.rows, found.columns) == (3, 4)
    assert found.schema == {"age": "integer", "job": "string", "balance": "integer", "y": "string"}
    assert found.files[0]["path"] == "bank.csv" and len(found.files[0]["sha256"]) == 64
    assert fingerprint.DataFingerprint.from_dict(json.loads(json.dumps(found.to_dict()))) == found
    assert fingerprint_data(_table(tmp_path / "again", BASE), "csv").sha256 == found.sha256  # content, not the place


@pytest.mark.parametrize("changed, expected", [
    (BASE + "60,retired,900,yes\n", ["rows added: 1 (3 -> 4)"]),
    ("age,job,balance,y\n30,admin,100,no\n", ["rows removed: 2 (3 -> 1)"]),
    ("age,job,balance,y,extra\n30,admin,100,no,1\n41,technician,250,yes,1\n52,admin,-20,no,1\n", ["columns added: extra"]),
    (BASE.replace(",job", "").replace(",admin", "").replace(",technician", ""), ["columns removed: job"]),
    (BASE.replace("-20", "-20.5"), ["columns retyped: balance (integer -> number)"]),
    (BASE.replace("100", "101"), ["same rows and columns, other values (content hash differs)"]),
])
def test_changes_in_rows_columns_and_types_are_named(tmp_path, changed, expected):
    before = fingerprint_data(_table(tmp_path / "before", BASE), "csv")
    now = fingerprint_data(_table(tmp_path / "now", changed), "csv")
    assert compare(before, now) == expected


def test_same_data_is_no_change(tmp_path):
    before = fingerprint_data(_table(tmp_path / "a", BASE), "csv")
    assert compare(before, fingerprint_data(_table(tmp_path / "b", BASE), "csv")) == []
    assert compare(None, before) == []


def test_a_changed_file_is_reported_against_the_latest_registered_version(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPC_HOME", str(tmp_path / "home"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    first = fingerprint_data(_table(tmp_path / "v1", BASE), "csv")
    assert fingerprint.change_from_registered("bank", first) is None  # nothing registered yet
    registry.register(model, name="bank", task="classification", metric="accuracy", value=0.9, goal="maximize", source="automl",
                      run_id="r1", spec_sha256="s", job_dir=str(tmp_path), data=first.to_dict(), seed=7)
    assert fingerprint.change_from_registered("bank", first) is None  # same data
    grown = fingerprint_data(_table(tmp_path / "v2", BASE.replace("-20", "-20.5") + "60,retired,900,yes\n"), "csv")
    message = fingerprint.change_from_registered("bank", grown)
    assert message == (f"the training data differs from the data of bank:1 (bank.csv, 3 rows x 4 columns, sha256 {first.sha256[:12]} -> "
                       f"bank.csv, 4 rows x 4 columns, sha256 {grown.sha256[:12]}): rows added: 1 (3 -> 4); "
                       "columns retyped: balance (integer -> number)")
    shown = registry.get("bank")
    assert shown.seed == 7 and shown.data["rows"] == 3
    from capc import views

    fields = views.model_fields(shown)  # what `capc models show` prints
    assert fields["data"] == f"bank.csv, 3 rows x 4 columns, sha256 {first.sha256[:12]}"
    assert fields["schema"] == "age:integer, job:string, balance:integer, y:string" and fields["seed"] == 7


def test_an_image_folder_is_fingerprinted_per_image(tmp_path):
    from repo import DATA

    found = fingerprint_data(DATA / "mri", "image_folder")
    assert found.rows == len(found.files) > 10 and found.schema == {"image": "image", "label": "string"}
    assert all(f["path"].split("/")[0] in ("no", "yes") for f in found.files)
    tag = json.loads(fingerprint.to_tag(found))
    assert tag["sha256"] == found.sha256 and len(fingerprint.to_tag(found)) <= 8000
