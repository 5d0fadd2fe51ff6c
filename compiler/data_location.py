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
