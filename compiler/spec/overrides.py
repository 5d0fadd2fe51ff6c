"""Stage 1, spec: `--set key.path=value` overrides applied to a loaded spec (or job YAML) before validation, each
problem at an overridden key pointing at the override rather than at the file."""

from __future__ import annotations

from capc.errors import SpecInvalid, SpecProblem
from capc.spec.loader import LoadedSpec


def apply_overrides(loaded: LoadedSpec, overrides: list[str]) -> list[tuple[str, object]]:
    """`--set a.b=value` like `az ml job create --set`: value is read as YAML (numbers, booleans, lists)."""
    import yaml

    applied = []
    for index, expression in enumerate(overrides, start=1):
        key, sep, raw = expression.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise SpecInvalid([SpecProblem("--set", index, 1, key, f"cannot read override `{expression}`", "write --set key.path=value, e.g. --set automl.timeout_minutes=2")])
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = loaded.data
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SpecInvalid([SpecProblem("--set", index, 1, ".".join(parts[: depth + 1]), f"`{'.'.join(parts[:depth + 1])}` is a value, not a section", "override a key inside a section")])
            node = child
        node[parts[-1]] = value
        path = tuple(parts)
        # Problems at an overridden path point at the override, not at the file.
        for mark_key in [k for k in loaded.marks if _marked_path(k)[: len(path)] == path]:
            del loaded.marks[mark_key]
        loaded.marks[path] = ("--set", index)
        applied.append((key, value))
    return applied


def _marked_path(mark_key: tuple) -> tuple:
    """The key path a marks entry belongs to: `path` for a value mark, `path` of `(path, "key")` for a key mark."""
    # The root's mark is keyed by the empty path, so test the length before looking at the first element.
    is_key_mark = len(mark_key) == 2 and isinstance(mark_key[0], tuple) and mark_key[1] == "key"
    return mark_key[0] if is_key_mark else mark_key
