"""The stage layout README promises, as the imports go (read from the source with ast, so it stays true):
no stage that reads the job folder, serves, reports or plans imports the local engine, and the modules copied into
job folders import nothing of capc."""

from __future__ import annotations

import ast

import pytest

from layout import COMPILER, modules

# Stages that the local engine's modules must not leak into (they run with the Azure backend, or before any backend).
NOT_LOCAL = ("azure/", "serve/", "report/", "plan/", "jobfolder/", "render/", "spec/", "state/", "selection.py")
# Copied into the job folder by `capc build` and run there, where capc is not installed.
SELF_CONTAINED = ("azure_metrics.py", "serving_cost.py", "forecasting.py")


def imported(path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("stage", NOT_LOCAL)
def test_no_stage_but_the_local_backend_imports_it(stage):
    offenders = {
        rel: sorted(n for n in imported(path) if n == "capc.local" or n.startswith("capc.local."))
        for rel, path in modules() if rel.startswith(stage)
    }
    assert {rel: names for rel, names in offenders.items() if names} == {}


@pytest.mark.parametrize("module", SELF_CONTAINED)
def test_modules_copied_into_job_folders_import_nothing_of_capc(module):
    names = imported(COMPILER / module)
    assert sorted(n for n in names if n == "capc" or n.startswith("capc.")) == []
