"""Backend, local: the data a submit trains on - resolved from the job folder's MLTable, fingerprinted
(capc.state.fingerprint) and compared with the data of the latest registered version of the model."""

from __future__ import annotations

from pathlib import Path

from capc.errors import CapcError
from capc.state import fingerprint, registry


def folder_data(job_dir: Path) -> tuple[Path, str] | None:
    """(the file or image folder data/MLTable resolves to, its format); None for data on Azure only."""
    from capc.local.data import image_root_from_mltable, is_remote, mltable_source

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


def spec_fingerprint(spec) -> fingerprint.DataFingerprint | None:
    """The fingerprint of a validated spec's dataset (None for a registered Azure data asset)."""
    path = spec.dataset_path
    return fingerprint.fingerprint_data(path, spec.data["dataset"]["format"]) if path is not None else None


def latest_registered(name: str) -> tuple[str, fingerprint.DataFingerprint] | None:
    """(NAME:VERSION, its data's fingerprint) of the latest registered version; None when nothing is registered
    or that version recorded no fingerprint."""
    try:
        latest = registry.get(name)
    except CapcError:  # nothing registered under this name yet
        return None
    before = fingerprint.DataFingerprint.from_dict(latest.data)
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
    changes = fingerprint.compare(before, now)
    return fingerprint.change_message(ref, before, now, changes) if changes else None
