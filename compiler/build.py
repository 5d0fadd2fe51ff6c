"""Stages 3-4 glued: a validated Spec -> every artifact's bytes (manifest included), in memory, and onto disk."""

from __future__ import annotations

from pathlib import Path

from capc.artifacts import plan_changes, with_manifest, write_tree
from capc.spec import Spec


def compile_spec(spec: Spec, out_dir: Path) -> dict[str, bytes]:
    from capc.render.render import render_artifacts

    return with_manifest(render_artifacts(spec, out_dir), spec.sha256, spec.name)


def build_spec(spec: Spec, out_dir: Path):
    """`capc build` of one spec: out_dir/<name>/ rewritten (atomically) only when something changed.
    Returns the job folder, its files and the changes."""
    files = compile_spec(spec, out_dir)
    target = out_dir / spec.name
    changes = plan_changes(target, files)
    if changes:
        write_tree(target, files)
    return target, files, changes


def build_for_submit(spec_path: Path, overrides: list[str], out_dir: Path):
    """(Spec, job folder): built as `capc build` would; a run with --set builds into $CAPC_HOME so generated/ stays
    the specs' truth."""
    import hashlib

    from capc.spec import load_spec
    from capc.state.home import capc_home

    spec = load_spec(spec_path, overrides)
    if overrides:
        out_dir = capc_home() / "builds" / hashlib.sha256(spec.sha256.encode()).hexdigest()[:12]
    target, _, _ = build_spec(spec, out_dir)
    return spec, target
