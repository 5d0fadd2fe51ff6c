"""Stages 3-4 glued: a validated Spec -> every artifact's bytes (manifest included), in memory."""

from __future__ import annotations

from pathlib import Path

from capc.artifacts import with_manifest
from capc.spec import Spec


def compile_spec(spec: Spec, out_dir: Path) -> dict[str, bytes]:
    from capc.render.render import render_artifacts

    return with_manifest(render_artifacts(spec, out_dir), spec.sha256, spec.name)
