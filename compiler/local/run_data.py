"""Backend, local: the data a submit trains on - the files the job folder's MLTable resolves to, fingerprinted
(capc.state.fingerprint), so the run records them and the submit can say how they differ from the data of the
latest registered model."""

from __future__ import annotations

from pathlib import Path

from capc.jobfolder.data import training_data
from capc.state import fingerprint


def folder_data(job_dir: Path) -> tuple[Path, str] | None:
    """(the file or image folder data/MLTable resolves to, its format); None for data on Azure only."""
    return training_data(job_dir)


def folder_fingerprint(job_dir: Path) -> fingerprint.DataFingerprint | None:
    found = folder_data(job_dir)
    return fingerprint.fingerprint_data(*found) if found else None
