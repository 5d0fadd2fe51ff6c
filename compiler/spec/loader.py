"""Stage 1, load: a spec file -> plain mapping plus the line/column of every key and value.

PyYAML's node tree keeps marks; we walk it ourselves so every later problem can point at FILE:LINE:COL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from capc.errors import SpecInvalid, SpecProblem

KeyPath = tuple  # tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class LoadedSpec:
    path: Path
    text: bytes
    data: object
    marks: dict  # KeyPath -> Mark of the value; (KeyPath, "key") -> Mark of the key itself
    duplicates: tuple = ()  # (KeyPath, Mark) of each key written again, read last-wins (duplicate_keys="last")

    def mark_of(self, path: KeyPath, key: bool = False) -> Mark:
        """Closest known mark: the path itself, else its nearest ancestor (for missing keys)."""
        path = tuple(path)
        if key and (path, "key") in self.marks:
            return self.marks[(path, "key")]
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, Mark(1, 1))


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(node: yaml.Node, path: KeyPath, marks: dict, problems: list, file: str, duplicates: list | None = None):
    """The node as plain data; a key written twice is a problem, or with `duplicates` (a list) read last-wins and
    recorded there."""
    marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                m = _mark(key_node)
                problems.append(SpecProblem(file, m.line, m.column, ".".join(map(str, path)), "keys must be plain strings"))
                continue
            key = key_node.value
            child = path + (key,)
            if key in result and duplicates is not None:
                duplicates.append((child, _mark(key_node)))
            elif key in result:
                m = _mark(key_node)
                problems.append(SpecProblem(file, m.line, m.column, ".".join(map(str, child)), "duplicate key", "each key may appear once; remove one of them"))
            marks[(child, "key")] = _mark(key_node)
            result[key] = _construct(value_node, child, marks, problems, file, duplicates)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), marks, problems, file, duplicates) for i, item in enumerate(node.value)]
    # Scalars: let the safe constructor resolve ints, floats, bools and nulls as YAML 1.1 does.
    return yaml.SafeLoader("").construct_object(node, deep=True)


def load_spec_file(path: Path, duplicate_keys: str = "refuse") -> LoadedSpec:
    """Read and parse a spec; any problem (unreadable, YAML syntax, empty, not a mapping) is a SpecInvalid.
    `duplicate_keys`: "refuse" (a problem), or "last" - a key written twice takes its last value, as azure-ai-ml's
    loader reads an Azure ML job YAML, and is recorded in LoadedSpec.duplicates."""
    file = str(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise SpecInvalid([SpecProblem(file, 1, 1, "", "spec file not found", "check the path")]) from None
    except OSError as exc:
        raise SpecInvalid([SpecProblem(file, 1, 1, "", f"cannot read the spec file: {exc.strerror}")]) from None
    try:
        source = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = text.count(b"\n", 0, exc.start) + 1
        column = exc.start - (text.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecInvalid([SpecProblem(file, line, column, "", f"the spec is not UTF-8 text (byte 0x{text[exc.start]:02x})", "save it as UTF-8")]) from None
    try:
        documents = list(yaml.compose_all(source, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or "invalid YAML"
        raise SpecInvalid([SpecProblem(file, line, col, "", f"YAML syntax error: {what}", exc.context or None)]) from None
    except yaml.YAMLError as exc:
        raise SpecInvalid([SpecProblem(file, 1, 1, "", f"YAML error: {exc}")]) from None
    # `---` alone or a bare `null` composes to a null scalar: that is an empty spec too, not a "single value".
    documents = [d for d in documents if d is not None and d.tag != "tag:yaml.org,2002:null"]
    if not documents:
        raise SpecInvalid([SpecProblem(file, 1, 1, "", "the spec is empty", "start with `name:`, `dataset:`, `task:` and `metric:`; `capc schema` prints every key")])
    if len(documents) > 1:
        m = _mark(documents[1])
        raise SpecInvalid([SpecProblem(file, m.line, m.column, "", "one spec per file: found more than one YAML document", "split them into separate files")])
    root = documents[0]
    if not isinstance(root, yaml.MappingNode):
        m = _mark(root)
        raise SpecInvalid([SpecProblem(file, m.line, m.column, "", f"the spec must be a mapping of keys to values, not a {_kind(root)}", "start with `name: my-use-case`")])
    marks: dict = {}
    problems: list = []
    duplicates: list | None = [] if duplicate_keys == "last" else None
    try:
        data = _construct(root, (), marks, problems, file, duplicates)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise SpecInvalid([SpecProblem(file, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1, "", f"cannot read value: {exc.problem}")]) from None
    if problems:
        raise SpecInvalid(problems)
    return LoadedSpec(path=path, text=text, data=data, marks=marks, duplicates=tuple(duplicates or ()))


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "single value"
