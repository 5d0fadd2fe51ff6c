"""Shared state: where capc keeps its state ($CAPC_HOME), the one rule every stage that reads or writes state uses."""

from __future__ import annotations

import os
from pathlib import Path


def capc_home() -> Path:
    """State folder: $CAPC_HOME, else .capc/ in the working directory."""
    return Path(os.environ.get("CAPC_HOME") or ".capc").absolute()
