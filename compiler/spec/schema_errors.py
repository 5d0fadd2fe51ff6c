"""Stage 2, validate: JSON Schema errors explained - each error jsonschema finds in a spec becomes a SpecProblem
in the user's words (an unknown key with a did-you-mean, the branch of a oneOf the user meant, a missing key with
the schema's description as its hint) at the line and column it comes from; problem_at places any problem."""

from __future__ import annotations

from collections.abc import Iterator

from capc.errors import SpecProblem
from capc.spec.hints import did_you_mean
from capc.spec.loader import LoadedSpec


def explain_schema_errors(loaded: LoadedSpec, schema: dict) -> Iterator[SpecProblem]:
    """Every way `loaded` breaks `schema` (capc.spec.validate's schema), each as a SpecProblem at its line."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    for error in validator.iter_errors(loaded.data):
        if not _left_to_search_space_check(loaded, tuple(error.absolute_path)):
            yield from _explain(loaded, error, schema)


def _left_to_search_space_check(loaded: LoadedSpec, path: tuple) -> bool:
    """A distribution written as text or a mapping is checked by `search_space_is_valid`, whose messages are sharper."""
    # Without this, `unifrom(0.1, 1)` would be reported twice: once as a pattern mismatch, once as a typo.
    if len(path) >= 3 and path[:2] == ("sweep", "search_space"):
        return isinstance(loaded.data["sweep"]["search_space"].get(path[2]), (str, dict))
    if len(path) >= 5 and path[:2] == ("sweep", "families") and path[3] == "search_space":
        return isinstance(loaded.data["sweep"]["families"][path[2]]["search_space"].get(path[4]), (str, dict))
    return False


def _explain(loaded: LoadedSpec, error, schema: dict) -> Iterator[SpecProblem]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = sorted(set(error.instance) - set(allowed))
        for key in extras:
            where = path + (key,)
            yield problem_at(loaded, where, f"unknown key `{key}`", did_you_mean(key, allowed) if allowed else None, key_mark=True)
        return
    if error.validator == "oneOf" and not error.context:
        # Valid under several branches: alternatives given together. A non-mapping also lands here; its type error says why.
        if isinstance(error.instance, dict):
            options = [b["required"][0] for b in error.validator_value if set(b.get("required", ["-"])) <= set(error.instance)]
            yield problem_at(loaded, path, f"give only one of {', '.join(f'`{o}`' for o in options)}, not {'both' if len(options) == 2 else 'several'}")
        return
    if error.validator == "oneOf" and error.context:
        # Pick the branch the user most likely meant: the one whose errors go deepest into the value.
        if isinstance(error.instance, dict) and {"required"} >= {e.validator for e in error.context}:
            # A branch is named by its first required key; given that key, the branch's other keys are what is missing.
            branches = [b["required"] for b in error.validator_value if "required" in b]
            meant = next((keys for keys in branches if keys[0] in error.instance), None)
            if meant:
                for key in (k for k in meant if k not in error.instance):
                    yield problem_at(loaded, path, f"missing required key `{key}`", _describe(schema, path + (key,)))
                return
            yield problem_at(loaded, path, f"needs one of {', '.join(f'`{keys[0]}`' for keys in branches)}")
            return
        best = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        keyword = any("const" in branch for branch in error.validator_value)
        if keyword and len(best.absolute_path) == len(path):  # `auto` or a number: the value fits no alternative
            *others, last = [_alternative(branch) for branch in error.validator_value]
            choices = f"{', '.join(others)} or {last}" if others else last
            yield problem_at(loaded, path, f"`{error.instance}` is not allowed", f"expected {choices}")
            return
        yield from _explain(loaded, best, schema)
        return
    if error.validator == "required":
        missing = [k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance]
        for key in missing:
            yield problem_at(loaded, path, f"missing required key `{key}`", _describe(schema, path + (key,)))
        return
    if error.validator == "enum":
        choices = [str(c) for c in error.validator_value]
        yield problem_at(loaded, path, f"`{error.instance}` is not allowed", did_you_mean(str(error.instance), choices))
        return
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, str) else " or ".join(error.validator_value)
        got = "null" if error.instance is None else f"{_json_type(error.instance)} `{error.instance!r}`"
        yield problem_at(loaded, path, f"expected {_article(expected)}, got {got}")
        return
    if error.validator == "uniqueItems" and isinstance(error.instance, list):
        seen, twice = [], []
        for item in error.instance:
            (twice if item in seen and item not in twice else seen).append(item)
        yield problem_at(loaded, path, f"lists {', '.join(f'`{t}`' for t in twice)} more than once", "each entry may appear once")
        return
    if error.validator == "pattern" and "propertyNames" in error.schema_path:  # a key, not a value, has the wrong form
        where = path + (error.instance,)
        yield problem_at(loaded, where, f"`{error.instance}` cannot name an entry here", f"names must match {error.validator_value}", key_mark=True)
        return
    if error.validator == "pattern":
        yield problem_at(loaded, path, f"`{error.instance}` has the wrong form", _describe(schema, path) or f"must match {error.validator_value}")
        return
    yield problem_at(loaded, path, error.message)


def _describe(schema: dict, path: tuple) -> str | None:
    """The schema's description of a key path, used as the hint for a missing or malformed value."""
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
            continue
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node.get("description")


def _alternative(branch: dict) -> str:
    """One alternative of a keyword-or-value key in words: `auto`, a whole number >= 1, a list of whole numbers >= 1."""
    if "const" in branch:
        return f"`{branch['const']}`"
    if branch.get("type") == "array":
        return "a list of " + _alternative(branch.get("items", {})).replace("a whole number", "whole numbers").replace("a number", "numbers")
    words = _article(branch.get("type", "value"))
    return f"{words} >= {branch['minimum']}" if "minimum" in branch else words


def _article(word: str) -> str:
    return {"integer": "a whole number", "number": "a number", "string": "a string", "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "null"}.get(word, word)


def _json_type(value) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", dict: "mapping", list: "list", type(None): "null"}.get(type(value), type(value).__name__)


def problem_at(loaded: LoadedSpec, path: tuple, message: str, hint: str | None = None, key_mark: bool = False) -> SpecProblem:
    key_path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
    mark = loaded.marks.get(path) if not key_mark else loaded.marks.get((path, "key"), loaded.marks.get(path))
    if isinstance(mark, tuple):  # came from --set
        return SpecProblem("--set", mark[1], 1, key_path, message, hint)
    if mark is None:
        mark = loaded.mark_of(path)
        if isinstance(mark, tuple):
            return SpecProblem("--set", mark[1], 1, key_path, message, hint)
    return SpecProblem(str(loaded.path), mark.line, mark.column, key_path, message, hint)
