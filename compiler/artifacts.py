"""Stage 4, artifacts: rendered files -> manifest, on-disk writes (atomic) and dry-run diffs.

`build` and `diff` share the same rendered mapping, so what `diff` shows is exactly what `build` writes.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from capc import __version__
from capc.errors import CapcError

MANIFEST = "manifest.json"
IGNORED_PARTS = frozenset({"__pycache__", ".ipynb_checkpoints"})


def with_manifest(files: dict[str, bytes], spec_sha256: str, spec_name: str) -> dict[str, bytes]:
    """Add manifest.json: spec hash, capc version and a sha256 per artifact (sorted: same spec, same bytes)."""
    manifest = {
        "name": spec_name,
        "spec_sha256": spec_sha256,
        "capc_version": __version__,
        "artifacts": {path: hashlib.sha256(content).hexdigest() for path, content in sorted(files.items())},
    }
    return {**files, MANIFEST: (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()}


def sweep_job_files(job_dir: Path) -> dict[str, Path]:
    """The sweep jobs a build left, by kind: `sweep` (sweep_job.yml: one family, or a conditional grid) or
    `sweep_<family>` (sweep_<family>.yml: one per family of a random or bayesian conditional sweep). A kind is also
    the name of the job's step in pipeline_job.yml."""
    import yaml

    found = {}
    for path in sorted(Path(job_dir).glob("sweep_*.yml")):
        kind = "sweep" if path.name == "sweep_job.yml" else path.stem
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("type") == "sweep":  # sweep_trial*.yml are components
            found[kind] = path
    return found


def read_tree(folder: Path) -> dict[str, bytes]:
    """What a previous build left: relative posix path -> bytes (caches and editor droppings skipped)."""
    if not folder.is_dir():
        return {}
    tree = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not IGNORED_PARTS & set(rel.parts):
            tree[rel.as_posix()] = path.read_bytes()
    return tree


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # "added" | "changed" | "removed"
    old: bytes | None
    new: bytes | None


def plan_changes(target: Path, files: dict[str, bytes]) -> list[Change]:
    current = read_tree(target)
    changes = []
    for path in sorted(set(current) | set(files)):
        old, new = current.get(path), files.get(path)
        if old == new:
            continue
        kind = "added" if old is None else "removed" if new is None else "changed"
        changes.append(Change(path, kind, old, new))
    return changes


def unified_diff(change: Change, label: str) -> str:
    old = _text(change.old)
    new = _text(change.new)
    if old is None or new is None:
        return f"Binary file {label}/{change.path} {change.kind}\n"
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{label}/{change.path}" if change.old is not None else "/dev/null",
        tofile=f"b/{label}/{change.path}" if change.new is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _text(content: bytes | None) -> str | None:
    if content is None:
        return ""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def write_tree(target: Path, files: dict[str, bytes]) -> None:
    """Replace `target` with exactly `files`: written in a sibling temp folder, then swapped in by rename.

    An interrupted build leaves either the old folder or the new one whole, never a mix.
    """
    try:
        _swap_in(target, files)
    except OSError as exc:  # a full disk or a read-only --out is the user's to fix, not a crash
        raise CapcError(f"cannot write {target}: {exc.strerror or exc}.", "the previous build, if any, is left as it was") from exc


def _swap_in(target: Path, files: dict[str, bytes]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        for rel, content in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            if rel.endswith(".py"):
                os.chmod(path, 0o644)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rename(target, retired / target.name)
            try:
                os.rename(staging, target)
            except BaseException:
                os.rename(retired / target.name, target)  # put the old build back before giving up
                os.rmdir(retired)
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def output_mode() -> int:
    """The mode of a file the user asked for (a predict output, a report): 0666 less the umask, as any Unix tool
    creates one. A temp file is made 0600 and a rename keeps that, so the writer sets this one before renaming;
    secrets (endpoint keys) keep 0600."""
    try:  # Linux says the umask without changing it; os.umask can only read it by setting it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, content: bytes, mode: int | None = None) -> None:
    """Write one file by temp file + rename so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
