"""Defaults come from the spec schema once, at compile time: only the spec and render stages read them
(capc.spec.schema_default); backends, serving, the report and selection read the job folder, where they are written."""

from __future__ import annotations

import ast

from layout import modules

READERS = ("spec/", "render/")


def names_schema_default(path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.Name) and node.id == "schema_default"
               or isinstance(node, ast.alias) and node.name == "schema_default"
               or isinstance(node, ast.Attribute) and node.attr == "schema_default"
               for node in ast.walk(tree))


def test_only_the_spec_and_render_stages_read_schema_defaults():
    offenders = [rel for rel, path in modules() if not rel.startswith(READERS) and names_schema_default(path)]
    assert offenders == []
