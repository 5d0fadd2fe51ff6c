"""Backend, local: a job's `command:` as Azure ML runs it - the one place a command job, a sweep trial and a
pipeline step turn their command text into the process that runs.

Azure ML hands `command` to a shell in the code folder, with the job's `environment_variables` set: multi-line
commands, `;`, `&&`, pipes and `$VAR` behave as in bash. Here too: the bound text goes to `bash -c`. Bindings
(`${{inputs.X}}`, `${{outputs.X}}`, `${{search_space.X}}`, ...) are substituted first, each value quoted for the
shell where it lands (bare, inside double quotes or inside single quotes), so a path with spaces stays one word;
`$[[ ... ]]` (Azure's optional-input syntax) keeps its text when every binding inside it has a value, and drops it
otherwise. A command that is exactly `python SCRIPT ARGS` or `python -m MODULE ARGS` (no shell syntax) is started
as that argv, `python` being the job environment's interpreter, so trials in capc's interpreter keep the fork
server's fast path (capc.local.launch). In a shell command `python` is the same interpreter: its folder leads PATH.

`distribution` (PyTorch, MPI, TensorFlow) runs as one process, rank 0 of 1, with the variables Azure ML sets on a
node (https://learn.microsoft.com/azure/machine-learning/how-to-train-distributed-gpu): MASTER_ADDR, MASTER_PORT,
WORLD_SIZE, NODE_RANK, RANK, LOCAL_RANK for PyTorch (set for every type here, as launchers read them), the
OMPI_COMM_WORLD_* variables and AZ_BATCHAI_MPI_MASTER_NODE for MPI, TF_CONFIG for TensorFlow; a note says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from capc.errors import CapcError
from capc.local.launch import PYTHON_COMMAND

PLACEHOLDER = re.compile(r"\$\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")
OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)  # $[[--flag ${{inputs.x}}]]: kept only when x has a value
# Characters that make a command shell syntax when they stand outside quotes (or expand inside double quotes).
SHELL_SYNTAX = frozenset(";&|<>()$`\\*?[]{}~#!\n")
EXPANDS_IN_DOUBLE_QUOTES = frozenset("$`\\")
PLAIN, SINGLE, DOUBLE = "plain", "single", "double"
PIP_INSTALL = re.compile(r"\b(pip3?|-m\s+pip)\s+install\b")


@dataclass(frozen=True)
class PreparedCommand:
    """What to start for one command: argv, and the variables to lay over the process environment."""

    argv: list[str]
    text: str  # the bound command, as the shell reads it (what a log or an error shows)
    env: dict[str, str] = field(default_factory=dict)  # PATH (the environment's python first), rank variables, environment_variables
    notes: tuple[str, ...] = ()
    shell: bool = False  # started as `bash -c TEXT` rather than as the python argv


def references(command: str) -> list[tuple[str, str]]:
    """(scope, name) of every ${{scope.name}} in the command text, in order (`parent.jobs.x.outputs.y` ->
    ("parent", "jobs.x.outputs.y"))."""
    refs = []
    for ref in PLACEHOLDER.findall(str(command)):
        scope, _, name = ref.partition(".")
        refs.append((scope, name))
    return refs


def optional_only(command: str) -> set[tuple[str, str]]:
    """The bindings that stand only inside `$[[...]]`: a command runs without a value for them."""
    inside = {ref for segment in OPTIONAL.findall(str(command)) for ref in references(segment)}
    return inside - set(references(OPTIONAL.sub("", str(command))))


def bind_command(command: str, values: Mapping[str, Mapping[str, str]]) -> str:
    """The command text with each ${{scope.name}} replaced by values[scope][name], quoted for the shell where it
    stands; `$[[...]]` kept when all its bindings have values, else dropped. CapcError for a binding without a value."""

    def optional(match: re.Match) -> str:
        inner = match.group(1)
        has_all = all(values.get(scope, {}).get(name) is not None for scope, name in references(inner))
        return inner if has_all else ""

    text = OPTIONAL.sub(optional, str(command))
    out, state, position = [], PLAIN, 0
    for match in PLACEHOLDER.finditer(text):
        before = text[position:match.start()]
        out.append(before)
        state = _quote_state(before, state)
        scope, _, name = match.group(1).partition(".")
        value = values.get(scope, {}).get(name)
        if value is None:
            raise CapcError(f"the command refers to ${{{{{match.group(1)}}}}}, which has no value here.")
        out.append(_quoted(str(value), state))
        position = match.end()
    out.append(text[position:])
    return "".join(out).strip()


def _quote_state(text: str, state: str) -> str:
    """The quoting state after reading `text` from `state` (bash's rules for ', " and backslash)."""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif state == SINGLE:
            state = PLAIN if char == "'" else SINGLE
        elif char == "\\":
            escaped = True
        elif state == DOUBLE:
            state = PLAIN if char == '"' else DOUBLE
        elif char in "'\"":
            state = SINGLE if char == "'" else DOUBLE
    return state


def _quoted(value: str, state: str) -> str:
    if state == SINGLE:
        return value.replace("'", "'\\''")
    if state == DOUBLE:
        return re.sub(r'([\\"$`])', r"\\\1", value)
    return shlex.quote(value)


def python_argv(text: str) -> list[str] | None:
    """The words of a command that is exactly `python SCRIPT ...` or `python -m MODULE ...` with no shell syntax
    (None otherwise): what may be started without a shell."""
    state = PLAIN
    for char in text:
        if state == PLAIN and char in SHELL_SYNTAX or state == DOUBLE and char in EXPANDS_IN_DOUBLE_QUOTES:
            return None
        state = _quote_state(char, state)
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    if len(words) < 2 or not PYTHON_COMMAND.fullmatch(os.path.basename(words[0])):
        return None
    if words[1] == "-m":
        return words if len(words) >= 3 else None
    return None if words[1].startswith("-") else words


def prepare_command(
    command: str,
    values: Mapping[str, Mapping[str, str]],
    *,
    python: str | None = None,
    environment_variables: Mapping | None = None,
    distribution: Mapping | None = None,
) -> PreparedCommand:
    """The process for `command` with its bindings filled: `python` (default capc's interpreter) is what `python`
    means in it; environment_variables and the distribution's rank variables go into `env`."""
    python = python or sys.executable
    text = bind_command(command, values)
    if not text:
        raise CapcError("the command is empty.")
    env = {"PATH": f"{python_bin_dir(python)}{os.pathsep}{os.environ.get('PATH', '')}"}
    notes: tuple[str, ...] = ()
    if distribution:
        rank_env, note = distribution_env(distribution)
        env.update(rank_env)
        notes = (note,)
    if python == sys.executable and PIP_INSTALL.search(text):
        notes += (f"the command installs packages with pip, and it runs in capc's interpreter ({sys.executable}): they "
                  "land in capc's own environment; a conda file in the job's environment gives it one of its own",)
    env.update({str(k): _text(v) for k, v in (environment_variables or {}).items()})
    words = python_argv(text)
    if words is not None:
        return PreparedCommand([python, *words[1:]], text, env, notes)
    return PreparedCommand([shell_program(), "-c", text], text, env, notes, shell=True)


def _text(value) -> str:
    from capc.local.samplers import format_value

    return format_value(value)


def shell_program() -> str:
    """bash, as on Azure's images; sh where there is none."""
    return shutil.which("bash") or "/bin/sh"


def python_bin_dir(python: str) -> str:
    """A folder whose `python` and `python3` run `python`: its own folder when it holds them (a virtual
    environment, pyenv), else a folder of two small scripts under $CAPC_HOME."""
    folder = Path(python).parent
    if all(_same_program(folder / name, python) for name in ("python", "python3")):
        return str(folder)
    from capc.state.home import capc_home

    shim = capc_home() / "python-shims" / hashlib.sha256(python.encode()).hexdigest()[:12]
    if not (shim / "python3").is_file():
        shim.mkdir(parents=True, exist_ok=True)
        for name in ("python", "python3"):
            temporary = shim / f".{name}.{os.getpid()}"
            temporary.write_text(f"#!/bin/sh\nexec {shlex.quote(python)} \"$@\"\n")
            temporary.chmod(0o755)
            temporary.replace(shim / name)
    return str(shim)


def _same_program(candidate: Path, python: str) -> bool:
    try:
        return candidate.exists() and os.path.samefile(candidate, python)
    except OSError:
        return False


# ---------------------------------------------------------------- distribution


def distribution_env(distribution: Mapping) -> tuple[dict[str, str], str]:
    """The rank variables of rank 0 in a world of one for Azure's `distribution` block, and the note that says so."""
    kind = str(distribution.get("type", "")).lower()
    port = _free_port()
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "1", "NODE_RANK": "0", "RANK": "0",
           "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    if kind == "mpi":
        env.update({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
                    "OMPI_COMM_WORLD_LOCAL_SIZE": "1", "AZ_BATCHAI_MPI_MASTER_NODE": "127.0.0.1",
                    "AZ_BATCH_MASTER_NODE": f"127.0.0.1:{port}"})
    elif kind == "tensorflow":
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}})
    asked = distribution.get("process_count_per_instance") or distribution.get("worker_count") or 1
    shown = ", ".join(f"{k}={v}" for k, v in env.items() if k != "TF_CONFIG") + (", TF_CONFIG (one worker)" if "TF_CONFIG" in env else "")
    note = (f"distribution ({distribution.get('type')}, {asked} process(es) per instance on Azure) runs here as one "
            f"process, rank 0 of 1, with the variables Azure sets on a single node: {shown}")
    return env, note


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------- running one to its end

KILL_GRACE_S = 5.0


def run_to_end(prepared: PreparedCommand, cwd: Path, env: Mapping[str, str], log_path: Path,
               timeout_s: float | None = None) -> tuple[str, int | None]:
    """Run the command in its own process group (stdout and stderr to log_path) until it ends, its timeout passes
    (the group is ended) or Ctrl-C (the group is ended); (completed | failed | interrupted, exit status or None)."""
    import subprocess
    import time

    from capc.local.launch import parent_death_hook

    with open(log_path, "ab") as log:
        try:
            process = subprocess.Popen(prepared.argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=parent_death_hook())
        except OSError as exc:
            raise CapcError(f"cannot start `{prepared.text}`: {exc}") from None
    deadline = time.monotonic() + timeout_s if timeout_s else None
    try:
        while process.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                end_group(process)
                return "failed", None
            time.sleep(0.05)
    except KeyboardInterrupt:
        end_group(process)
        return "interrupted", process.returncode
    return ("completed" if process.returncode == 0 else "failed"), process.returncode


def end_group(process) -> None:
    """SIGTERM to the process's group, SIGKILL after a grace period."""
    import signal
    import subprocess

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue
