"""Backend, local: what an engine (AutoML, the sweep, AutoML for images) hands the submit to compare and register."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    """The best run of one engine (automl or sweep), ready to be compared and registered."""

    source: str
    run_id: str
    value: float
    model_dir: Path
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    label: str = ""
