"""The spec reference (README's key table), generated from the JSON Schema so the docs never drift from it."""

from __future__ import annotations

import json

from capc.spec.validate import schema


def _resolve(node: dict) -> dict:
    if "$ref" in node:
        return schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _type(node: dict) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if any("const" in branch for branch in node.get("oneOf", ())):  # a keyword or a value: `auto` or integer
        return " or ".join(f"`{b['const']}`" if "const" in b else _type(b) for b in node["oneOf"])
    kind = node.get("type", "")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"list of {node.get('items', {}).get('type', 'values')}"
    return kind or ("distribution" if "oneOf" in node else "")


def rows(node: dict | None = None, prefix: str = "") -> list[tuple[str, str, str, str]]:
    node = _resolve(node or schema())
    required = set(node.get("required", []))
    out = []
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub)
        path = f"{prefix}{key}"
        default = json.dumps(sub["default"]) if "default" in sub else ("required" if key in required else "")
        out.append((path, _type(sub), default, sub.get("description", "").replace("|", "\\|")))
        if "properties" in sub:
            out.extend(rows(sub, path + "."))
        elif isinstance(sub.get("additionalProperties"), dict):
            entry = _resolve(sub["additionalProperties"])
            entry_path = f"{path}.<{sub.get('x-key-name', 'param')}>"
            out.append((entry_path, _type(entry) or "object", "", entry.get("description", "").replace("|", "\\|")))
            if "properties" in entry:  # entries that are sections of their own (sweep.families.<family>)
                out.extend(rows(entry, entry_path + "."))
    return out


def markdown() -> str:
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{p}` | {t} | {d and f'`{d}`' if d != 'required' else 'required'} | {m} |" for p, t, d, m in rows()]
    return "\n".join(lines) + "\n"
