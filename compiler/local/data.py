"""Backend, local: read a job's training data the way Azure would, from the generated MLTable or uri_file."""

from __future__ import annotations

from pathlib import Path

import yaml

from capc.errors import CapcError
from capc.image_files import image_base64


def mltable_source(mltable_dir: Path) -> tuple[Path, str, list[str]]:
    """(data file, "csv"|"parquet", columns to drop) from an MLTable file."""
    table_file = mltable_dir / "MLTable"
    try:
        table = yaml.safe_load(table_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapcError(f"no MLTable in {mltable_dir}; rebuild with `capc build`.") from None
    paths = table.get("paths") or []
    entry = paths[0] if paths else {}
    rel = entry.get("file") or entry.get("folder") or entry.get("pattern")
    if not rel:
        raise CapcError(f"{table_file} names no data file.")
    fmt, drop = "csv", []
    for step in table.get("transformations") or []:
        if isinstance(step, dict):
            if "read_parquet" in step:
                fmt = "parquet"
            if "drop_columns" in step:
                cols = step["drop_columns"]
                drop.extend([cols] if isinstance(cols, str) else cols)
    return (mltable_dir / rel).resolve(), fmt, drop


def read_frame(path: Path, fmt: str, drop: list[str] | None = None):
    """Load a csv/parquet file into pandas; unreadable data becomes a CapcError naming the file."""
    import pandas as pd

    if not path.is_file():
        raise CapcError(f"training data {path} not found.", "check dataset.path in the spec and rebuild")
    try:
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CapcError(f"cannot read training data {path}: {exc}") from None
    if frame.empty:
        raise CapcError(f"training data {path} has no rows.")
    return frame.drop(columns=[c for c in (drop or []) if c in frame.columns])


def check_target(frame, target: str, task: str, source: Path) -> None:
    """What no model can learn from: a missing target column, or a classification label with one class."""
    if target not in frame.columns:
        raise CapcError(f"target column `{target}` is not in {source.name}.", f"columns: {', '.join(map(str, frame.columns[:20]))}")
    labels = frame[target].dropna()
    if labels.empty:
        raise CapcError(f"target column `{target}` in {source.name} is empty.")
    if task == "classification" and labels.nunique() < 2:
        raise CapcError(f"target column `{target}` in {source.name} holds one class only (`{labels.iloc[0]}`); classification needs at least two.")


def request_rows(job_dir: Path, limit: int = 1000) -> list:
    """Real rows of a job's training data as a scoring request sends them: features only (records), or base64
    images for an image job. Used by `capc bench`."""
    import json
    import math

    table = yaml.safe_load((job_dir / "data" / "MLTable").read_text(encoding="utf-8"))
    if any("read_json_lines" in step for step in table.get("transformations") or [] if isinstance(step, dict)):
        images = []
        for line in (job_dir / "data" / "images.jsonl").read_text().splitlines()[:limit]:
            images.append(image_base64((job_dir / "data" / json.loads(line)["image_url"]).read_bytes()))
        return images
    automl = yaml.safe_load((job_dir / "automl_job.yml").read_text(encoding="utf-8"))
    data_file, fmt, drop = mltable_source(job_dir / "data")
    frame = read_frame(data_file, fmt, drop).head(limit)
    frame = frame.drop(columns=[automl.get("target_column_name")], errors="ignore")
    records = frame.to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in records]
