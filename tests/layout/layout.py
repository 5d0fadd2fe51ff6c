"""capc's own source files, as the layout tests read them."""

from __future__ import annotations

import os
from pathlib import Path

import capc

COMPILER = Path(capc.__file__).resolve().parent


def modules() -> list[tuple[str, Path]]:
    """(path relative to compiler/, path) of every .py file. Symlinks are not followed: in a worktree
    compiler/templates is a link to templates/, which holds no capc module."""
    found = []
    for folder, subfolders, files in os.walk(COMPILER, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__" and not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder) / name
                found.append((path.relative_to(COMPILER).as_posix(), path))
    return found
