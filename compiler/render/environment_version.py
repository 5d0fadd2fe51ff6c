"""Stage 3, render (environment version): the generated environment's version, a hash of what it is made of.

Azure ML reuses a registered environment of the same name and version whatever its files now say
(Azure/azureml-previews#119), so capc versions `<name>-env` by its content: the sha256 of the rendered conda.yml
and the base image, in that order. The same files give the same version (builds stay deterministic); one changed
byte of a pin or of the image tag gives a new one, and every compiled job names `azureml:NAME:VERSION`.
"""

from __future__ import annotations

import hashlib

VERSION_CHARS = 16  # hex digits of the hash: as the Azure backend's data assets (capc.azure.assets.VERSION_CHARS)


def environment_version(conda_yml: bytes, image: str) -> str:
    """The version of an environment made of this conda file on this image."""
    digest = hashlib.sha256()
    digest.update(b"conda.yml\0" + conda_yml + b"\0image\0" + image.encode("utf-8"))
    return digest.hexdigest()[:VERSION_CHARS]


def versioned(environment: dict, conda_yml: bytes) -> dict:
    """The render context's environment with its content version and the reference jobs use."""
    version = environment_version(conda_yml, environment["image"])
    return {**environment, "version": version, "ref": f"azureml:{environment['name']}:{version}"}

