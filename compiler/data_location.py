"""Shared rule: whether a data path lies on this machine or with Azure (a registered asset, a datastore URI, a URL).

Every stage asks this one question the same way: the spec's checks and render (a dataset that is an Azure data
asset), the job folder's reader, both backends (what to upload, what the local engine cannot open) and the report.
"""

from __future__ import annotations

ASSET_PREFIX = "azureml:"  # azureml:NAME:VERSION, azureml://datastores/..., azureml://subscriptions/...
LOCAL_SCHEME = "file://"


def is_remote(path: str) -> bool:
    """Azure's to open, not this machine's: an azureml: reference or any URL but file://."""
    path = str(path)
    return path.startswith(ASSET_PREFIX) or ("://" in path and not path.startswith(LOCAL_SCHEME))


def output_file_name(name: str, declared) -> str | None:
    """A uri_file output's file name, as Azure hands its command the path of a file: the last part of its path
    (`.../hello_world.txt`), else the output's name. None for any other output (a folder)."""
    from collections.abc import Mapping

    if not isinstance(declared, Mapping) or str(declared.get("type")) != "uri_file":
        return None
    last = str(declared.get("path") or "").rstrip("/").rsplit("/", 1)[-1]
    return last if last and "${{" not in last and ":" not in last else name
