"""Backend, local: a hand-written job's `environment`, built here when it says what it needs.

Azure ML builds an environment from its image and conda file. Here:
- a conda file (inline under `conda_file:`, or a file named next to an image) has its pip dependencies, and its
  conda ones that pip knows by the same name, installed into a virtual environment under
  $CAPC_HOME/envs/<hash>/, the hash of the interpreter and the dependency list, so every trial and step naming
  the same environment reuses it (capc.local.env_install builds it, with uv where installed, else venv + pip);
- the conda file's `python=X.Y` picks an interpreter of that version on this machine; without one, capc's
  interpreter, and a note names it. An environment on capc's own Python version sees capc's packages too
  (system site packages, as Azure's curated images bring mlflow and the usual libraries); what the conda file
  pins is installed over them;
- conda packages that are not Python packages (r-base, cudatoolkit, mkl, ...) are named in a note, never
  silently dropped;
- a curated or registered environment (`azureml:...`), an image alone or a Docker build context runs in capc's
  interpreter, with a note; `--env current` runs everything in capc's interpreter.
A job in capc's interpreter keeps the fork server's fast path (capc.local.launch); a built one is spawned.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from capc.errors import CapcError

JOB, CURRENT = "job", "current"
ENV_MODES = (JOB, CURRENT)  # --env: build the job's environment when it says what it needs | capc's interpreter
# Conda packages with no Python package of the same name on PyPI: named in a note, not installed.
NOT_PYTHON_PACKAGES = re.compile(
    r"^(r-.*|r|lib.*|cudatoolkit.*|cuda-.*|cudnn|nccl|mkl.*|intel-openmp|openmpi|mpich|openjdk|gcc.*|gxx.*|"
    r"gfortran.*|cmake|make|git|nodejs|ca-certificates|openssl|blas|openblas|tbb|_libgcc_mutex|_openmp_mutex)$"
)
CONDA_TO_PIP = {"pytorch": "torch", "py-xgboost": "xgboost", "matplotlib-base": "matplotlib", "tensorflow-gpu": "tensorflow"}
_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$")


@dataclass(frozen=True)
class JobEnvironment:
    """Where a job's commands run: `python` is what `python` means in them (None: capc's own interpreter)."""

    python: str | None = None
    folder: str | None = None  # the virtual environment, when one was built or reused
    notes: tuple[str, ...] = ()
    reused: bool = False

    @property
    def interpreter(self) -> str:
        return self.python or sys.executable


@dataclass(frozen=True)
class CondaRequest:
    """What a conda file asks of this machine."""

    python_version: str | None  # "3.8" from `python=3.8`
    pip: tuple[str, ...]  # the pip: list, as written (options lines included)
    conda: tuple[str, ...]  # conda packages as pip requirements (`scikit-learn=0.24.2` -> `scikit-learn==0.24.2.*`)
    not_python: tuple[str, ...] = ()  # conda packages pip cannot install: named in a note
    source: str = "the inline conda file"

    @property
    def requirements(self) -> tuple[str, ...]:
        return self.pip + self.conda


def job_environment(environment, base_dir: Path, mode: str = JOB, say=None) -> JobEnvironment:
    """The environment a job's `environment:` value stands for here, built (or reused) now when it has a conda
    file; `base_dir` is the folder its relative paths are read from. CapcError when it cannot be built."""
    if mode not in ENV_MODES:
        raise CapcError(f"--env must be one of {', '.join(ENV_MODES)}, not {mode!r}.")
    here = f"capc's interpreter ({sys.executable}, Python {_version_of_this()})"
    if mode == CURRENT:
        return JobEnvironment(notes=(f"--env current: the job runs in {here}, not in its own environment",))
    environment, base_dir = _environment_file(environment, Path(base_dir))
    if not isinstance(environment, Mapping):
        what = environment if environment else "none given"
        return JobEnvironment(notes=(f"the job's environment ({what}) is not built locally: it runs in {here}",))
    conda = environment.get("conda_file")
    if not conda:
        what = f"image {environment.get('image')}" if environment.get("image") else "a Docker build context"
        return JobEnvironment(notes=(f"the job's environment ({what}, no conda file) is not built locally: it runs in {here}",))
    request = conda_request(conda, base_dir)
    from capc.local.env_install import build_or_reuse

    return build_or_reuse(request, say=say)


def _environment_file(environment, base_dir: Path):
    """An environment given as a path to its own YAML file (`environment: ./env.yml`) read, its paths relative to it."""
    if isinstance(environment, str) and environment.lower().endswith((".yml", ".yaml")) and not environment.startswith("azureml"):
        path = (base_dir / environment.removeprefix("file:")).resolve()
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8")), path.parent
        except (OSError, yaml.YAMLError) as exc:
            raise CapcError(f"cannot read the environment file {environment} ({path}): {exc}") from None
    return environment, base_dir


def conda_request(conda, base_dir: Path) -> CondaRequest:
    """The conda file (a mapping, or a path relative to base_dir) read into what pip is asked to install."""
    source = "the inline conda file"
    if isinstance(conda, str):
        path = (Path(base_dir) / conda.removeprefix("file:")).resolve()
        source = str(path)
        try:
            conda = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CapcError(f"cannot read the environment's conda file {path}: {exc}") from None
    if not isinstance(conda, Mapping):
        raise CapcError(f"{source}: a conda file is a mapping with `dependencies:`.")
    python_version, pip, translated, not_python = None, [], [], []
    for entry in conda.get("dependencies") or []:
        if isinstance(entry, Mapping):
            pip += [str(line).strip() for line in entry.get("pip") or [] if str(line).strip()]
            continue
        match = _CONDA_SPEC.match(str(entry).strip())
        if not match:
            continue
        name, version = match.group(1).lower(), match.group(2).strip()
        if name == "python":
            python_version = _major_minor(version)
        elif name == "pip":
            continue  # the installer itself
        elif NOT_PYTHON_PACKAGES.match(name):
            not_python.append(str(entry).strip())
        else:
            translated.append(CONDA_TO_PIP.get(name, name) + _pip_version(version))
    return CondaRequest(python_version, tuple(pip), tuple(translated), tuple(not_python), source)


def _major_minor(version: str) -> str | None:
    found = re.match(r"^=?=?\s*(\d+)\.(\d+)", version)
    return f"{found.group(1)}.{found.group(2)}" if found else None


def _pip_version(version: str) -> str:
    """A conda version spec as pip's: `=1.2` -> `==1.2.*` (conda's `=` is a prefix match), a build string dropped;
    `>=1.2`, `==1.2`, `<2,>=1` as they are."""
    version = version.strip()
    if not version:
        return ""
    if version.startswith("=") and not version.startswith("==") or version[0].isdigit():
        number = version.lstrip("= ").split()[0].split("=")[0].rstrip(".*")
        return f"=={number}.*"
    return version.split()[0]


def _version_of_this() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def find_python(version: str | None) -> tuple[str, str | None]:
    """(interpreter, note): capc's own when it is of `version` (or none is asked), else one of that version on
    this machine (PATH, pyenv), else capc's own with a note naming it."""
    if version is None or version == _version_of_this():
        return sys.executable, None
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        if Path(candidate).is_file() and _reports_version(candidate) == version:
            return candidate, None
    return sys.executable, (
        f"the environment asks for Python {version}, which this machine does not have: it runs on Python "
        f"{_version_of_this()} ({sys.executable})"
    )


def _reports_version(python: str) -> str | None:
    try:
        done = subprocess.run([python, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
