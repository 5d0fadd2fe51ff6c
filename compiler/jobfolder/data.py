"""Job folder: its training data, read the way Azure would - the generated MLTable (the one parser of it), the
rows a scoring request sends, and the image folder behind an image job's MLTable.

Both backends, `capc bench` and the report read a job's data here, so they read the same rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from capc import serving_cost
from capc.data_location import is_remote
from capc.errors import CapcError
from capc.forecast_requests import FORECASTING_TASK
from capc.image_files import image_base64

MLTABLE = "MLTable"  # Azure's name for a table's definition file, in the folder it describes

def read_mltable(data_dir: Path) -> dict:
    """The MLTable file of a job's data folder, as a mapping; CapcError when there is none."""
    table_file = Path(data_dir) / MLTABLE
    try:
        return yaml.safe_load(table_file.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CapcError(f"no MLTable in {data_dir}; rebuild with `capc build`.") from None


def is_image_table(table: dict) -> bool:
    """An image job's MLTable: JSON lines of image_url and label (capc's MLTable_images)."""
    return any("read_json_lines" in step for step in table.get("transformations") or [] if isinstance(step, dict))


def mltable_source(mltable_dir: Path) -> tuple[Path, str, list[str]]:
    """(data file, "csv"|"parquet", columns to drop) from an MLTable file."""
    table = read_mltable(mltable_dir)
    paths = table.get("paths") or []
    entry = paths[0] if paths else {}
    rel = entry.get("file") or entry.get("folder") or entry.get("pattern")
    if not rel:
        raise CapcError(f"{mltable_dir / MLTABLE} names no data file.")
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
    """Real rows of a job's training data as a scoring request sends them (as sample_request.json holds them):
    features only (records), or base64 images for an image job. Used by `capc bench` and the selection."""
    if is_image_table(read_mltable(job_dir / "data")):
        images = []
        for line in (job_dir / "data" / "images.jsonl").read_text().splitlines()[:limit]:
            images.append(image_base64((job_dir / "data" / json.loads(line)["image_url"]).read_bytes()))
        return images
    automl = yaml.safe_load((job_dir / "automl_job.yml").read_text(encoding="utf-8"))
    if automl.get("task") == FORECASTING_TASK:  # its rows are history: a forecast names the times after it
        raise CapcError(
            "a forecasting endpoint answers forecast requests for the times after each series' history, not rows of "
            "its training table.",
            "send it forecast requests: `capc invoke NAME` (its sample_request.json), or `capc predict NAME --horizon N`",
        )
    data_file, fmt, drop = mltable_source(job_dir / "data")
    frame = read_frame(data_file, fmt, drop).head(limit)
    frame = frame.drop(columns=[automl.get("target_column_name")], errors="ignore")
    return serving_cost.request_records(frame, limit)


def image_listing(data_dir: Path) -> list[str]:
    """The lines of the JSONL listing an image MLTable names (its first `paths` entry, images.jsonl by default)."""
    paths = read_mltable(data_dir).get("paths") or [{}]
    return (Path(data_dir) / str(paths[0].get("file", "images.jsonl"))).read_text(encoding="utf-8").splitlines()


def image_root_from_mltable(data_dir: Path) -> Path:
    """The image folder behind a generated image MLTable (data/MLTable + data/images.jsonl).

    Every row's image lies in <root>/<label>/<file>; the rows must agree on <root>.
    """
    table_file = Path(data_dir) / MLTABLE
    paths = read_mltable(data_dir).get("paths") or [{}]
    listing = Path(data_dir) / str(paths[0].get("file", "images.jsonl"))
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CapcError(f"{table_file} lists its images in {listing}, which does not exist; rebuild with `capc build`.") from None
    roots = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            url, label = str(row["image_url"]), str(row["label"])
        except (ValueError, KeyError, TypeError):
            raise CapcError(f"{listing}:{number}: expected a JSON object with image_url and label.") from None
        if is_remote(url):
            raise CapcError(f"the images of this job live on Azure ({url}); the local engine trains on a folder on this machine.")
        image = Path(os.path.abspath(Path(data_dir) / url))
        if image.parent.name != label:
            raise CapcError(f"{listing}:{number}: image {url} is not in a sub-folder named after its label {label!r}.")
        roots.add(image.parent.parent)
    if len(roots) != 1:
        raise CapcError(f"{listing} lists images from {len(roots)} folders; the local engine trains on one image folder.", "rebuild with `capc build`")
    return roots.pop()


def training_data(job_dir: Path) -> tuple[Path, str] | None:
    """(the file or image folder the job folder's data/MLTable resolves to, its format); None for data on Azure
    only, or a folder without data on this machine (what a submit fingerprints)."""
    data_dir = Path(job_dir) / "data"
    if (data_dir / "images.jsonl").is_file():
        return image_root_from_mltable(data_dir), "image_folder"
    if not (data_dir / MLTABLE).is_file():
        return None
    path, fmt, _ = mltable_source(data_dir)
    return None if is_remote(str(path)) or not path.exists() else (path, fmt)
