"""Backend, local: the data a submit trains on - the files the job folder's MLTable resolves to, fingerprinted
(capc.state.fingerprint), so the run records them and the submit can say how they differ from the data of the
latest registered model."""

from __future__ import annotations

from pathlib import Path

from capc.data_location import is_remote
from capc.jobfolder.data import image_root_from_mltable, mltable_source
from capc.state import fingerprint


def folder_data(job_dir: Path) -> tuple[Path, str] | None:
    """(the file or image folder data/MLTable resolves to, its format); None for data on Azure only."""
    data_dir = Path(job_dir) / "data"
    if (data_dir / "images.jsonl").is_file():
        return image_root_from_mltable(data_dir), "image_folder"
    if not (data_dir / "MLTable").is_file():
        return None
    path, fmt, _ = mltable_source(data_dir)
    return None if is_remote(str(path)) or not path.exists() else (path, fmt)


def folder_fingerprint(job_dir: Path) -> fingerprint.DataFingerprint | None:
    found = folder_data(job_dir)
    return fingerprint.fingerprint_data(*found) if found else None
