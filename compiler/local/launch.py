"""Backend, local: starting one sweep trial's process - the job's exact command, in a process group of its own.

Two ways, one contract (argv, cwd, env, stdout+stderr to one file, exit status read like Popen.returncode -
negative for a signal -, signals sent to the whole group so a trial's own children go too):
- spawned: subprocess.Popen of the command; any command.
- forked: `python SCRIPT ARGS` and `python -m MODULE ARGS` are forked from a fork server, a helper process that
  imported mlflow (with numpy and pandas) once. Importing mlflow, opening its store and tearing a big interpreter
  down cost about 4 s of CPU per trial; a forked trial is running its first line within milliseconds
  (bench/bench_sweep_overhead.py measures both). The child does what `python SCRIPT` would: own process group,
  stdin from /dev/null, cwd and environment replaced, sys.argv and sys.path[0] set, the script run as __main__,
  then non-daemon threads joined, atexit handlers run and the exit status Python would give (SystemExit's code,
  1 with the traceback printed for an uncaught exception). numpy's global RNG is reseeded in the child (fork
  copies it; Python's `random` is reseeded by fork itself). Whatever the server cannot fork is spawned.

Run as `python -m capc.local.launch` it is the fork server: newline-delimited JSON requests on stdin
({"key", "argv", "cwd", "env", "log"}, or {"watch": PGID} / {"unwatch": PGID} for a spawned trial's group),
replies on stdout ({"ready"}, {"key", "pid"} or {"key", "error"}, {"pid", "status"} when a child ends).

No trial outlives the runner, however the runner ends (SIGKILL and the OOM killer included), by two mechanisms:
- the fork server's stdin is a watchdog pipe: only the runner holds its write end, so the kernel closes it when the
  runner dies, and the server then SIGKILLs the process group of every trial it forked or was told to watch (the
  trials' own children too) and exits. A pipe rather than a signal because it needs no cooperation from the
  trials and reaches whole groups.
- every trial process also gets a parent-death signal (Linux prctl PR_SET_PDEATHSIG, SIGKILL): a forked trial when
  the fork server dies, a spawned one when the runner's thread that started it ends (the sweep's worker thread,
  which outlives its trials). This covers a dead fork server, and spawned trials when there is no server
  (launch mode "spawn"); it reaches the trial process alone, not what the trial started.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# What the fork server imports before forking: what every trial imports (mlflow pulls numpy and pandas in).
PRELOAD = ("mlflow", "mlflow.tracking.fluent", "mlflow.store.tracking.sqlalchemy_store")
SERVER_START_TIMEOUT_S = 180.0  # the first reply waits for the preload, slow on a busy machine
REPLY_TIMEOUT_S = 30.0
OUTPUT_TAIL_LINES = 20  # what a failed process's error quotes of its output
PYTHON_COMMAND = re.compile(r"python(\d+(\.\d+)?)?$")  # python, python3, python3.11, or a path to one


def output_tail(path: Path, lines: int = OUTPUT_TAIL_LINES) -> str:
    """The last lines a process wrote to its log (read from the end: logs can be large)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _libc_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal, the watchdog pipe alone
        return None


_PRCTL = _libc_prctl()  # looked up here, not in a forked child
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """In a new child process: receive `sig` when the parent (the thread that started this process) dies. When the
    parent is already gone - it died between fork and this call - end now."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(128 + int(sig))


def parent_death_hook(sig: int = signal.SIGKILL):
    """A Popen preexec_fn giving the child a parent-death signal (None where there is no prctl)."""
    if _PRCTL is None:
        return None
    parent = os.getpid()
    return lambda: die_with_parent(parent, sig)


class SpawnedTrial:
    """A trial started with Popen (its own session, so its group id is its pid)."""

    forked = False

    def __init__(self, argv: list[str], cwd: Path, env: dict, log_path: Path, server: ForkServer | None = None):
        with open(log_path, "ab") as log:
            self._popen = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=parent_death_hook(),
            )
        self.pid = self._popen.pid
        self._server = server
        if server:
            server.watch(self.pid)

    def poll(self) -> int | None:
        status = self._popen.poll()
        if status is not None and self._server:
            self._server.unwatch(self.pid)  # its group may be gone, and its number reused
            self._server = None
        return status

    def send_signal(self, sig: int) -> None:
        _signal_group(self.pid, sig)


class ForkedTrial:
    """A trial forked by the fork server; its exit status comes back through the server."""

    forked = True

    def __init__(self, server: ForkServer, pid: int):
        self._server = server
        self.pid = pid

    def poll(self) -> int | None:
        status = self._server.exit_status(self.pid)
        if status is None and not self._server.alive and not _exists(self.pid):
            return 255  # the server died before it could say how the trial ended
        return status

    def send_signal(self, sig: int) -> None:
        _signal_group(self.pid, sig)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # already gone
    except PermissionError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ForkServer:
    """The runner's side of the fork server: one helper process per sweep."""

    def __init__(self, env: dict, log_path: Path, preload: tuple[str, ...] = PRELOAD):
        self._log = open(log_path, "ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "capc.local.launch", *preload],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, start_new_session=True,
        )
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self._exits: dict[int, int] = {}
        self._next_key = 0
        self.ready = threading.Event()
        self.alive = True
        self.ready_after_s: float | None = None
        self._started = time.monotonic()
        self._reader = threading.Thread(target=self._read, name="capc-fork-server", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "ready" in message:
                self.ready_after_s = time.monotonic() - self._started
                self.ready.set()
            elif "key" in message:
                with self._lock:
                    waiter = self._replies.pop(message["key"], None)
                if waiter:
                    waiter.put(message)
            elif "status" in message:
                with self._lock:
                    self._exits[message["pid"]] = message["status"]
        self.alive = False
        self.ready.set()
        with self._lock:
            waiters, self._replies = list(self._replies.values()), {}
        for waiter in waiters:
            waiter.put({"error": "the fork server ended"})

    def exit_status(self, pid: int) -> int | None:
        with self._lock:
            return self._exits.get(pid)

    def _send(self, message: dict) -> bool:
        with self._lock:  # the sweep thread and the main thread may both write
            try:
                self._proc.stdin.write(json.dumps(message).encode() + b"\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return False
        return True

    def watch(self, pgid: int) -> None:
        """A spawned trial's group: the server SIGKILLs it too should the runner die."""
        if self.alive:
            self._send({"watch": pgid})

    def unwatch(self, pgid: int) -> None:
        if self.alive:
            self._send({"unwatch": pgid})

    def start(self, argv: list[str], cwd: Path, env: dict, log_path: Path) -> ForkedTrial | None:
        """Fork the trial; None when the server cannot (the caller spawns it instead)."""
        if not self.alive:
            return None
        waiter: queue.Queue = queue.Queue()
        with self._lock:
            key = self._next_key
            self._next_key += 1
            self._replies[key] = waiter
        request = {"key": key, "argv": argv, "cwd": str(cwd), "env": env, "log": str(log_path)}
        if not self._send(request):
            return None
        timeout = REPLY_TIMEOUT_S if self.ready.is_set() else SERVER_START_TIMEOUT_S
        try:
            reply = waiter.get(timeout=timeout)
        except queue.Empty:
            self.close()
            return None
        if "pid" not in reply:
            return None
        return ForkedTrial(self, reply["pid"])

    def close(self) -> None:
        self.alive = False
        try:
            with self._lock:
                self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()


def forkable(argv: list[str], cwd: Path) -> bool:
    """`python SCRIPT ...` with SCRIPT a file, or `python -m MODULE ...`: what the fork server can run."""
    if len(argv) < 2 or argv[0] != sys.executable:
        return False
    if argv[1] == "-m":
        return len(argv) >= 3
    return not argv[1].startswith("-") and (Path(cwd) / argv[1]).is_file()


class Launcher:
    """Starts trials: forked when the command allows it and mode is "auto" or "fork", else spawned."""

    def __init__(self, mode: str = "auto", env: dict | None = None, server_log: Path | None = None, preload=PRELOAD):
        if mode not in ("auto", "fork", "spawn"):
            raise ValueError(f"launch mode must be auto, fork or spawn, not {mode!r}")
        self.mode = mode
        self.server: ForkServer | None = None
        if mode != "spawn" and hasattr(os, "fork"):
            self.server = ForkServer(env if env is not None else dict(os.environ), server_log or Path(os.devnull), preload)

    def start(self, argv: list[str], cwd: Path, env: dict, log_path: Path):
        if self.server and forkable(argv, cwd):
            trial = self.server.start(argv, cwd, env, log_path)
            if trial is not None:
                return trial
        return SpawnedTrial(argv, cwd, env, log_path, self.server if self.server and self.server.alive else None)

    def close(self) -> None:
        if self.server:
            self.server.close()


# ---------------------------------------------------------------- the fork server process


def _reply(message: dict) -> bool:
    """False when the runner's end of the reply pipe is closed."""
    try:
        os.write(1, json.dumps(message).encode() + b"\n")
    except OSError:
        return False
    return True


def _exit_code(code) -> int:
    """SystemExit's code as the interpreter turns it into an exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_child(request: dict) -> None:
    """In the forked child: become `python SCRIPT ARGS`, run it, exit. Never returns."""
    code = 1
    interrupted = False
    try:
        die_with_parent(request["server_pid"])  # the server is single-threaded: its death is this thread's death
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if os.environ.get("PYTHONUNBUFFERED"):
            sys.stdout.reconfigure(write_through=True)
        if "numpy.random" in sys.modules:
            sys.modules["numpy.random"].seed()
        argv = request["argv"]
        import runpy

        if argv[1] == "-m":
            sys.argv = argv[2:]
            sys.path[0] = os.getcwd()
            runner = lambda: runpy.run_module(argv[2], run_name="__main__", alter_sys=True)  # noqa: E731
        else:
            sys.argv = argv[1:]
            sys.path[0] = os.path.dirname(os.path.abspath(argv[1]))
            runner = lambda: runpy.run_path(argv[1], run_name="__main__")  # noqa: E731
        try:
            runner()
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except KeyboardInterrupt:
            sys.excepthook(*sys.exc_info())
            interrupted = True
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        _shut_down_threads()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:  # the set-up itself failed: say so in the trial's output
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        if interrupted:  # like the interpreter: die of SIGINT
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code)


def _shut_down_threads() -> None:
    """What the interpreter does at exit before atexit: threading's own exit hooks first (concurrent.futures tells
    its idle workers to stop there: MLflow's model logging leaves such a pool), then wait for every non-daemon
    thread. Joining first waits forever on an idle pool worker."""
    shutdown = getattr(threading, "_shutdown", None)  # CPython's Py_Finalize calls it; private but stable since 3.4
    if shutdown is not None:
        shutdown()
        return
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()


def serve(preload: list[str]) -> None:
    started = time.monotonic()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for module in preload:
        try:
            __import__(module)
        except Exception as exc:  # a trial that needs it will report the problem itself
            print(f"capc fork server: cannot preload {module}: {exc}", file=sys.stderr, flush=True)
    _reply({"ready": True, "preload_s": round(time.monotonic() - started, 3)})
    buffer = b""
    children: set[int] = set()
    watched: set[int] = set()  # spawned trials' groups
    while True:
        readable, _, _ = select.select([0], [], [], 0.02)
        if readable:
            data = os.read(0, 1 << 16)
            if not data:
                _runner_gone(children | watched)
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                if "watch" in request:
                    watched.add(request["watch"])
                    continue
                if "unwatch" in request:
                    watched.discard(request["unwatch"])
                    continue
                request["server_pid"] = os.getpid()
                if threading.active_count() > 1:  # forking a threaded process is unsafe: let the runner spawn
                    _reply({"key": request["key"], "error": "the fork server has threads"})
                    continue
                pid = os.fork()
                if pid == 0:
                    _run_child(request)
                try:
                    os.setpgid(pid, pid)  # here too, so the group exists before the runner may signal it
                except OSError:
                    pass
                children.add(pid)
                if not _reply({"key": request["key"], "pid": pid}):
                    _runner_gone(children | watched)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            children.discard(pid)
            if not _reply({"pid": pid, "status": os.waitstatus_to_exitcode(status)}):
                _runner_gone(children | watched)


def _runner_gone(groups: set[int]) -> None:
    """The runner is done, or dead (its end of the pipes closed): whatever still runs has nobody to report to."""
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass  # already gone
    os._exit(0)  # skip tearing the preloaded modules down (seconds)


if __name__ == "__main__":
    serve(sys.argv[1:])
