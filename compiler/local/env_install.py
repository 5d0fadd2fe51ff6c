"""Backend, local: building (or reusing) the virtual environment a job's conda file asks for
(capc.local.environments reads the request; this module makes the folder).

$CAPC_HOME/envs/<key>/ is a virtual environment made from the chosen interpreter, keyed by a hash of that
interpreter and the dependency list, and finished by a marker file (capc-env.json) written last: a folder
without it is a build that did not end and is made again. A lock file serialises two capc processes building the
same one. uv builds it where it is installed (CAPC_INSTALLER=pip forces pip), else `python -m venv` and pip.

The package index is the installer's own configuration (pip.conf, PIP_*, UV_*), or CAPC_PIP_FIND_LINKS (folders
of wheels, os.pathsep between them: installs with --no-index from them) and CAPC_PIP_INDEX_URL.

A pin that cannot be installed on this interpreter (no release inside it has a wheel or Requires-Python that fits)
is moved to the nearest release that can be installed, and a note names each such change; a conda package pip has
no release of is left out with a note; anything else that fails is a CapcError naming the package and the
installer's last lines, and no half-built environment is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from capc.errors import CapcError
from capc.local.environments import CondaRequest, JobEnvironment, find_python

ENVS_DIR = "envs"
MARKER = "capc-env.json"
REQUIREMENTS_FILE = "capc-requirements.txt"
CAPC_SITE_PTH = "_capc_site.pth"  # capc's site-packages, after the environment's own: what the conda file pins wins
MAX_CHANGES = 6  # pins moved or conda packages dropped before giving up
TAIL_LINES = 15
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_FAILURE_PATTERNS = (
    r"No matching distribution found for (\S+)",
    r"Could not find a version that satisfies the requirement (\S+)",
    r"Failed to build (\S+)",
    r"Package '([^']+)' requires a different Python",
    r"Because (?:there is no version of |only |all versions of |no versions of )?([A-Za-z0-9._-]+)",
    r"Failed to (?:build|download|prepare distributions for) `?([A-Za-z0-9._-]+)",
)


def build_or_reuse(request: CondaRequest, say=None) -> JobEnvironment:
    """The environment for `request`: reused from $CAPC_HOME/envs when built before, else built now."""
    from capc.state.home import capc_home

    say = say or (lambda text: None)
    python, python_note = find_python(request.python_version)
    with_capc_site = python == sys.executable
    notes = [n for n in (python_note, _not_python_note(request)) if n]
    if with_capc_site:
        notes.append("the environment also sees the packages of capc's interpreter (as Azure's images bring their "
                     "own); the conda file's requirements are installed over them")
    key = hashlib.sha256(json.dumps({"python": python, "version": _version(python), "capc_site": with_capc_site,
                                     "requirements": list(request.requirements)}, sort_keys=True).encode()).hexdigest()[:16]
    folder = capc_home() / ENVS_DIR / key
    with _build_lock(folder):
        marker = _read_marker(folder)
        if marker is not None:
            return JobEnvironment(str(venv_python(folder)), str(folder), tuple(notes + marker["notes"] + [f"reused the environment built before: {folder}"]), reused=True)
        shutil.rmtree(folder, ignore_errors=True)
        log = folder.with_suffix(".install.log")
        say(f"building the job's environment from {request.source} ({len(request.requirements)} requirements, "
            f"{installer()}) in {folder}; log: {log}")
        try:
            _create(python, folder, with_capc_site, log)
            final, changes = _install_nearest(folder, list(request.requirements), set(request.conda), log, with_capc_site)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        _write_marker(folder, {"python": python, "requirements": final, "notes": changes})
    return JobEnvironment(str(venv_python(folder)), str(folder), tuple(notes + changes + [f"built the environment in {folder}"]))


def installer() -> str:
    return "uv" if shutil.which("uv") and os.environ.get("CAPC_INSTALLER", "uv") != "pip" else "pip"


def venv_python(folder: Path) -> Path:
    return Path(folder) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def index_args() -> list[str]:
    """CAPC_PIP_FIND_LINKS / CAPC_PIP_INDEX_URL as installer options (both pip and uv take these)."""
    args = []
    links = [link for link in os.environ.get("CAPC_PIP_FIND_LINKS", "").split(os.pathsep) if link]
    if links:
        args.append("--no-index")
        for link in links:
            args += ["--find-links", link]
    if os.environ.get("CAPC_PIP_INDEX_URL"):
        args += ["--index-url", os.environ["CAPC_PIP_INDEX_URL"]]
    return args


def _not_python_note(request: CondaRequest) -> str | None:
    if not request.not_python:
        return None
    return (f"conda packages that pip cannot install are not installed here: {', '.join(request.not_python)} "
            f"(from {request.source}); a command that needs them fails as it would without them")


def _version(python: str) -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}" if python == sys.executable else python


@contextmanager
def _build_lock(folder: Path):
    import fcntl

    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_marker(folder: Path) -> dict | None:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if venv_python(folder).exists() and isinstance(marker.get("notes"), list) else None


def _write_marker(folder: Path, content: dict) -> None:
    temporary = folder / f".{MARKER}.{os.getpid()}"
    temporary.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    temporary.replace(folder / MARKER)


def _run(argv: list[str], log: Path) -> tuple[bool, str]:
    """Run an installer step, its output appended to the log; (succeeded, output)."""
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    except OSError as exc:
        return False, f"cannot start {argv[0]}: {exc}"
    output = (done.stdout or "") + (done.stderr or "")
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(argv)}\n{output}\n")
    return done.returncode == 0, output


def _create(python: str, folder: Path, with_capc_site: bool, log: Path) -> None:
    if installer() == "uv":
        argv = [shutil.which("uv"), "venv", "--seed", "--python", python, str(folder)]
    else:
        argv = [python, "-m", "venv", str(folder)]
    ok, output = _run(argv, log)
    if not ok:
        raise CapcError(f"cannot create a virtual environment with {python}; the last lines:\n{_tail(output)}", f"the whole log: {log}")
    if with_capc_site:
        done = subprocess.run([str(venv_python(folder)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True)
        site_dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
        (Path(done.stdout.strip()) / CAPC_SITE_PTH).write_text("".join(f"{p}\n" for p in site_dirs))


def _install(folder: Path, requirements: list[str], log: Path) -> tuple[bool, str]:
    listed = folder / REQUIREMENTS_FILE
    listed.write_text("".join(f"{line}\n" for line in requirements))
    if not requirements:
        return True, ""
    if installer() == "uv":
        argv = [shutil.which("uv"), "pip", "install", "--python", str(venv_python(folder)), "-r", str(listed)]
    else:
        argv = [str(venv_python(folder)), "-m", "pip", "install", "--prefer-binary", "-r", str(listed)]
    return _run(argv + index_args(), log)


def _install_nearest(folder: Path, requirements: list[str], soft: set[str], log: Path, with_capc_site: bool = False) -> tuple[list[str], list[str]]:
    """Install, moving each pin that cannot be installed to the nearest release that can (and dropping conda
    packages pip has no release of); (the requirements installed, a note per change)."""
    original: dict[str, str] = {}  # requirement now in the list -> the one the conda file wrote
    tried: dict[str, set[str]] = {}
    changes: dict[str, str] = {}
    for _ in range(MAX_CHANGES + 1):
        ok, output = _install(folder, requirements, log)
        if ok:
            return requirements, list(changes.values())
        culprit = _failing_requirement(output, requirements)
        if culprit is None:
            raise _install_error(None, output, log)
        asked = original.get(culprit, culprit)
        name = _name(asked)
        versions = _available_versions(folder, name, log)
        if not versions and asked in soft:
            requirements.remove(culprit)
            instead = _capc_version(name) if with_capc_site else None
            changes[name] = (f"conda package {asked}: pip has no release of {name} here, so it is not installed"
                             + (f"; capc's {name} {instead} is what the job imports" if instead else ""))
            continue
        choice = _nearest(asked, versions, tried.setdefault(name, set()))
        if choice is None:
            raise _install_error(asked, output, log)
        tried[name].add(choice)
        replacement = f"{name}=={choice}"
        requirements[requirements.index(culprit)] = replacement
        original[replacement] = asked
        changes[name] = (f"{asked} cannot be installed on Python {_python_of(folder)} here: installed {name} {choice}, "
                         "the nearest release that can (Azure's run uses the pin)")
    raise _install_error(None, output, log)


def _capc_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _name(requirement: str) -> str:
    found = _REQUIREMENT_NAME.match(requirement)
    return found.group(1) if found else requirement


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _failing_requirement(output: str, requirements: list[str]) -> str | None:
    """The requirement the installer's output blames: named by one of its error patterns, else the last one of
    the list that the output's last lines mention."""
    by_name = {_canonical(_name(r)): r for r in requirements if not r.startswith("-")}
    for pattern in _FAILURE_PATTERNS:
        for found in re.findall(pattern, output):
            name = _canonical(_name(found))
            if name in by_name:
                return by_name[name]
    tail = _tail(output).lower()
    mentioned = [r for key, r in by_name.items() if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", tail.replace("_", "-"))]
    return mentioned[-1] if mentioned else None


def _available_versions(folder: Path, name: str, log: Path) -> list[str]:
    """The releases the index offers for `name` (pip index versions, from the environment's own pip)."""
    ok, output = _run([str(venv_python(folder)), "-m", "pip", "index", "versions", name, *index_args()], log)
    found = re.search(r"Available versions:\s*(.+)", output) if ok else None
    return [v.strip() for v in found.group(1).split(",") if v.strip()] if found else []


def _nearest(requirement: str, versions: list[str], tried: set[str]) -> str | None:
    """Of the releases outside the requirement's specifier, the one nearest to it (by position among the
    releases; on a tie the newer), skipping those tried already. None when it names no version."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    try:
        specifier = Requirement(requirement).specifier
    except InvalidRequirement:
        return None
    if not str(specifier):
        return None
    ordered = []
    for text in versions:
        try:
            ordered.append(Version(text))
        except InvalidVersion:
            continue
    ordered.sort()
    inside = [i for i, v in enumerate(ordered) if specifier.contains(v, prereleases=True)]
    anchors = [float(i) for i in inside] or [_position(ordered, Version(s.version.rstrip(".*"))) for s in specifier if _parses(s.version)]
    candidates = [(min(abs(i - a) for a in anchors), -i, str(v)) for i, v in enumerate(ordered)
                  if i not in inside and str(v) not in tried] if anchors else []
    return min(candidates)[2] if candidates else None


def _parses(text: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        Version(text.rstrip(".*"))
    except InvalidVersion:
        return False
    return True


def _position(ordered: list, version) -> float:
    """Where `version` would stand among the sorted releases (between two: x.5)."""
    import bisect

    return bisect.bisect_left(ordered, version) - 0.5


def _python_of(folder: Path) -> str:
    done = subprocess.run([str(venv_python(folder)), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def _tail(output: str) -> str:
    return "\n".join(line for line in output.strip().splitlines()[-TAIL_LINES:])


def _install_error(requirement: str | None, output: str, log: Path) -> CapcError:
    what = f"could not install {requirement}" if requirement else "failed"
    return CapcError(
        f"the job's environment cannot be built: {installer()} {what}, so no step ran. The installer's last lines:\n"
        f"{_tail(output) or '(no output)'}",
        f"the whole log: {log}. Fix the requirement in the conda file, point CAPC_PIP_FIND_LINKS at a folder of "
        "wheels, or run in capc's interpreter with --env current",
    )
