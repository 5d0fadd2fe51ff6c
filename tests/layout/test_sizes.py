"""Sizes the developers' guide sets: no module over 600 lines (the CLI module 500), no function over 70 lines."""

from __future__ import annotations

import ast

from layout import modules

MODULE_LINES = 600
MODULE_LINES_OF = {"cli.py": 500}
FUNCTION_LINES = 70


def test_no_module_is_too_long():
    too_long = {}
    for rel, path in modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MODULE_LINES_OF.get(rel, MODULE_LINES):
            too_long[rel] = lines
    assert too_long == {}


def test_no_function_is_too_long():
    too_long = {}
    for rel, path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES:
                    too_long[f"{rel}:{node.lineno} {node.name}"] = lines
    assert too_long == {}
