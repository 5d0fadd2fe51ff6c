"""Shared state: the fingerprint of the data a run trained on, and what changed since the last registered model.

A fingerprint is the sha256 of every input file (the files an MLTable resolves to: the table, or each image of an
image folder), the row and column counts and the schema (column -> integer | number | boolean | datetime | string,
as pandas reads the table). It travels with the submit run (a tag) and the registered model (registration.json);
`compare` says, before a submit starts and in `capc plan`, how the data differs from the latest registered
version's: rows added or removed, columns added, removed or retyped, or the same shape with other content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from capc.errors import CapcError

CHUNK = 1 << 20
IMAGE_SCHEMA = {"image": "image", "label": "string"}


@dataclass(frozen=True)
class DataFingerprint:
    files: list[dict]  # [{"path": name relative to the data's root, "sha256", "bytes"}], sorted by path
    rows: int
    columns: int
    schema: dict[str, str] = field(default_factory=dict)  # column -> kind, in the table's order
    sha256: str = ""  # one hash of the content: the files' hashes in path order (content_sha256)

    @classmethod
    def of(cls, files: list[dict], rows: int, schema: dict[str, str]) -> DataFingerprint:
        return cls(files, rows, len(schema), schema, content_sha256(files))

    def to_dict(self) -> dict:
        # The schema as [column, kind] pairs: the table's column order survives JSON written with sorted keys.
        return {**asdict(self), "schema": [[name, kind] for name, kind in self.schema.items()]}

    @classmethod
    def from_dict(cls, data: dict | None) -> DataFingerprint | None:
        if not data:
            return None
        files = list(data.get("files") or [])
        schema = data.get("schema") or {}
        schema = dict(schema) if isinstance(schema, dict) else {str(name): str(kind) for name, kind in schema}
        return cls(files, int(data.get("rows", 0)), int(data.get("columns", 0)), schema,
                   str(data.get("sha256") or content_sha256(files)))

    def summary(self) -> str:
        files = f"{len(self.files)} files" if len(self.files) != 1 else self.files[0]["path"]
        return f"{files}, {self.rows:,} rows x {self.columns} columns, sha256 {self.sha256[:12]}"


def content_sha256(files: list[dict]) -> str:
    digest = hashlib.sha256()
    for entry in files:
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_data(path: Path, fmt: str) -> DataFingerprint:
    """The fingerprint of a csv or parquet table, or of an image folder (one sub-folder per class)."""
    path = Path(path)
    try:
        if fmt == "image_folder":
            return _image_folder(path)
        entry = {"path": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size}
        schema, rows = _parquet_schema(path) if fmt == "parquet" else _csv_schema(path)
    except (OSError, ValueError) as exc:
        raise CapcError(f"cannot fingerprint the training data {path}: {exc}") from None
    return DataFingerprint.of([entry], rows, schema)


def _csv_schema(path: Path) -> tuple[dict[str, str], int]:
    import pandas as pd

    frame = pd.read_csv(path)
    return {str(c): kind_of(frame[c]) for c in frame.columns}, len(frame)


def _parquet_schema(path: Path) -> tuple[dict[str, str], int]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    schema = {f.name: kind_of_arrow(f.type) for f in parquet.schema_arrow}
    return schema, parquet.metadata.num_rows


def _image_folder(root: Path) -> DataFingerprint:
    from capc.image_files import is_image_path

    images = sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p) and not p.relative_to(root).parts[0].startswith("."))
    files = [{"path": p.relative_to(root).as_posix(), "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in images]
    return DataFingerprint.of(files, len(files), dict(IMAGE_SCHEMA))


def kind_of(column) -> str:
    import pandas as pd

    types = pd.api.types
    if types.is_bool_dtype(column):
        return "boolean"
    if types.is_integer_dtype(column):
        return "integer"
    if types.is_float_dtype(column):
        return "number"
    if types.is_datetime64_any_dtype(column):
        return "datetime"
    return "string"


def kind_of_arrow(arrow_type) -> str:
    import pyarrow.types as pat

    for test, kind in ((pat.is_boolean, "boolean"), (pat.is_integer, "integer"), (pat.is_floating, "number"),
                       (pat.is_decimal, "number"), (pat.is_temporal, "datetime")):
        if test(arrow_type):
            return kind
    return "string"


def compare(before: DataFingerprint | None, now: DataFingerprint) -> list[str]:
    """What changed from `before` (the latest registered model's data) to `now`; [] when the content is the same."""
    if before is None or before.sha256 == now.sha256:
        return []
    changes = []
    if now.rows != before.rows:
        delta = now.rows - before.rows
        changes.append(f"rows {'added' if delta > 0 else 'removed'}: {abs(delta):,} ({before.rows:,} -> {now.rows:,})")
    added = [c for c in now.schema if c not in before.schema]
    removed = [c for c in before.schema if c not in now.schema]
    retyped = [f"{c} ({before.schema[c]} -> {now.schema[c]})" for c in now.schema if c in before.schema and before.schema[c] != now.schema[c]]
    for label, names in (("columns added", added), ("columns removed", removed), ("columns retyped", retyped)):
        if names:
            changes.append(f"{label}: {', '.join(names)}")
    files_before = {f["path"]: f["sha256"] for f in before.files}
    files_now = {f["path"]: f["sha256"] for f in now.files}
    if len(files_before) > 1 or len(files_now) > 1:
        changed = sum(1 for p in files_now if p in files_before and files_before[p] != files_now[p])
        new, gone = len(set(files_now) - set(files_before)), len(set(files_before) - set(files_now))
        if new or gone or changed:
            changes.append(f"files: {new} added, {gone} removed, {changed} changed")
    if not changes:
        changes.append("same rows and columns, other values (content hash differs)")
    return changes


def change_message(model_ref: str, before: DataFingerprint, now: DataFingerprint, changes: list[str]) -> str:
    """One paragraph: the data differs from what `model_ref` was trained on, and how."""
    return (f"the training data differs from the data of {model_ref} ({before.summary()} -> {now.summary()}): "
            + "; ".join(changes))


def to_tag(fingerprint: DataFingerprint) -> str:
    """The fingerprint as one MLflow tag value (MLflow takes up to 8,000 characters): files beyond that are
    summed up as their combined hash."""
    data = fingerprint.to_dict()
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if len(text) > 7500:
        data["files"] = [{"path": f"{len(fingerprint.files)} files", "sha256": fingerprint.sha256,
                          "bytes": sum(f["bytes"] for f in fingerprint.files)}]
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return text


def latest_registered(name: str) -> tuple[str, DataFingerprint] | None:
    """(NAME:VERSION, its data's fingerprint) of the latest registered version; None when nothing is registered
    or that version recorded no fingerprint."""
    from capc.state import registry

    try:
        latest = registry.get(name)
    except CapcError:  # nothing registered under this name yet
        return None
    before = DataFingerprint.from_dict(latest.data)
    return (latest.ref, before) if before is not None else None


def change_from_registered(name: str, now) -> str | None:
    """The message for data that differs from the latest registered version's; None when it is the same, or there
    is nothing to compare with. `now`: a fingerprint, or a function making one (only called when there is)."""
    registered = latest_registered(name)
    if registered is None:
        return None
    now = now() if callable(now) else now
    if now is None:
        return None
    ref, before = registered
    changes = compare(before, now)
    return change_message(ref, before, now, changes) if changes else None
