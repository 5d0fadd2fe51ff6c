"""Backend, local: read a job's training data the way Azure would, from the generated MLTable or uri_file, and the
image folder behind an image job's MLTable.

Image folders are messy (JPEG and PNG under any suffix case, grayscale and RGB, names with spaces): files that
cannot be decoded are skipped with a warning naming them; a class without a readable image is an error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from capc import serving_cost
from capc.errors import CapcError
from capc.image_files import IMAGE_SUFFIXES, image_base64, is_image_path


# Where Azure keeps data (datastores, registered assets, URLs): a path the local engine cannot open.
REMOTE_PREFIXES = ("azureml:", "azureml://", "http://", "https://", "wasbs://", "wasb://", "abfss://", "adl://", "s3://", "gs://")


def is_remote(path: str) -> bool:
    return str(path).startswith(REMOTE_PREFIXES)


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
    """Real rows of a job's training data as a scoring request sends them (as sample_request.json holds them):
    features only (records), or base64 images for an image job. Used by `capc bench` and the selection."""
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
    return serving_cost.request_records(frame, limit)


# ---------------------------------------------------------------- image folders


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@dataclass
class ImageFolder:
    """A scanned image folder: readable images per class (sorted), and what was skipped and why."""

    root: Path
    classes: dict[str, list[Path]]
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    @property
    def image_count(self) -> int:
        return sum(len(files) for files in self.classes.values())

    def skipped_message(self) -> str | None:
        """One warning naming every skipped file, or None when nothing was skipped."""
        if not self.skipped:
            return None
        noun = "file" if len(self.skipped) == 1 else "files"
        return f"skipped {len(self.skipped)} unreadable {noun} in {self.root}: " + "; ".join(map(str, self.skipped))


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and is_image_path(name)


def readable_image(path: Path) -> str | None:
    """None when `path` decodes as an image, else why not (a full decode: truncated files fail here too)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, ValueError, SyntaxError) as exc:  # truncated data, broken headers
        return f"cannot decode: {exc}"
    return None


def scan_image_folder(root: Path, verify: bool = True) -> ImageFolder:
    """Classes (sub-folders, sorted) and their readable images; CapcError when the folder cannot be trained on.

    Files with an image suffix that do not decode are skipped (listed in `skipped`); other files are left out
    as the build's image listing leaves them out. verify=False trusts the suffixes (no decoding).
    """
    root = Path(root)
    if not root.is_dir():
        raise CapcError(f"image folder {root} does not exist.", "dataset.path of an image_folder spec names a folder with one sub-folder per class")
    classes: dict[str, list[Path]] = {}
    skipped: list[SkippedFile] = []
    for sub in sorted(root.iterdir()):
        if not sub.is_dir() or sub.name.startswith("."):
            continue
        good = []
        for path in sorted(sub.iterdir()):
            if not path.is_file() or not is_image_name(path.name):
                continue
            reason = readable_image(path) if verify else None
            if reason:
                skipped.append(SkippedFile(path, reason))
            else:
                good.append(path)
        classes[sub.name] = good
    if len(classes) < 2:
        found = f"only {next(iter(classes))!r}" if classes else "none"
        raise CapcError(
            f"image folder {root} needs one sub-folder per class, at least two; found {found}.",
            "put each class's images in a sub-folder named after the class (e.g. yes/ and no/)",
        )
    empty = [name for name, files in classes.items() if not files]
    if empty:
        names = ", ".join(repr(n) for n in empty)
        suffixes = " ".join(sorted(IMAGE_SUFFIXES))
        raise CapcError(
            f"class {names} in {root} has no readable image" if len(empty) == 1 else f"classes {names} in {root} have no readable image",
            f"each class needs at least one image file ({suffixes})" + (f"; skipped: {'; '.join(map(str, skipped))}" if skipped else ""),
        )
    return ImageFolder(root, classes, skipped)


def image_root_from_mltable(data_dir: Path) -> Path:
    """The image folder behind a generated image MLTable (data/MLTable + data/images.jsonl).

    Every row's image lies in <root>/<label>/<file>; the rows must agree on <root>.
    """
    table_file = Path(data_dir) / "MLTable"
    try:
        table = yaml.safe_load(table_file.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CapcError(f"no MLTable in {data_dir}; rebuild with `capc build`.") from None
    paths = table.get("paths") or [{}]
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
