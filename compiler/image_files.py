"""Shared by every stage: which files are images, and how a scoring request carries one.

Validation counts images, plan lists them into the build, the local engine scans them (all by class_images) and the CLI and the Azure
backend send them to an endpoint: each asks here, so adding a suffix or changing the body is one edit.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def is_image_path(path: Path | str) -> bool:
    """A file name capc takes for an image: an image suffix, any case (class_images also leaves hidden files out)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def class_images(root: Path) -> dict[str, list[Path]]:
    """An image folder's layout, as every stage reads it: class name -> its image files (sorted), one sub-folder per
    class (sorted). Hidden entries (a name starting with a dot, e.g. macOS's ._x.jpg) and files without an image
    suffix are not part of it."""
    return {
        sub.name: sorted(f for f in sub.iterdir() if f.is_file() and not f.name.startswith(".") and is_image_path(f))
        for sub in sorted(Path(root).iterdir())
        if sub.is_dir() and not sub.name.startswith(".")
    }


def image_base64(raw: bytes) -> str:
    """Image bytes as the base64 text score.py decodes."""
    return base64.b64encode(raw).decode("ascii")


def image_request_body(raw: bytes) -> bytes:
    """The scoring request for one image, capc's {"data": ["<base64>"]} (score.py also takes Azure's input_data)."""
    return json.dumps({"data": [image_base64(raw)]}).encode()
