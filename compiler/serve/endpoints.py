"""Backend, local endpoints: deploy, inspect, call, load-test and delete a local online endpoint.

An endpoint is two kinds of background processes on 127.0.0.1: capc's front end (serve/proxy.py: key auth,
limits, request log, Swagger UI) on the endpoint's port, and Azure's inference server (azmlinfsrv) serving the
generated score.py with AZUREML_MODEL_DIR at the registered model, on a private port. A redeploy starts a new
azmlinfsrv next to the old one, waits until it answers, switches the front end to it, waits for the old one's
requests to finish and only then stops it, so the scoring URI never fails a request in between.

These are the functions the CLI calls; each takes `home` ($CAPC_HOME by default) and raises CapcError for
anything the user can fix.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.serving import SAMPLE_REQUEST, deployment_settings, sample_request_file
from capc.serving_load import local_worker_count
from capc.serve import inference_server
from capc.serve.processes import (
    LOOPBACK, free_port, http_get, http_post, is_ours, port_is_free, python_argv, raised_errors, start_detached, stop, tail,
    wait_until_healthy,
)
from capc.serve.state import (
    PROXY_LOG, REQUEST_LOG, SERVER_LOG, EndpointState, Process, endpoint_dir, endpoints_root, ensure_secrets,
    locked, new_key, read_control_token, read_keys, read_state, write_keys, write_state,
)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # Azure documents no payload limit; capc answers 413 above this
READY_TIMEOUT_S = 180.0


@dataclass
class EndpointInfo:
    name: str
    scoring_uri: str
    swagger_uri: str
    docs_uri: str
    model: str
    state: str  # running | unhealthy | stopped
    provisioning_state: str  # Succeeded | Failed, as `az ml online-endpoint show` says it
    auth_mode: str
    port: int | None
    generation: int | None
    worker_count: int
    request_timeout_ms: int
    max_body_bytes: int
    model_dir: str
    job_dir: str
    proxy_pid: int | None
    server_pid: int | None
    created: str
    updated: str
    request_log: str
    primary_key: str | None = None  # filled by show() only

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- deploy


def deploy(
    name: str,
    model_dir: Path,
    job_dir: Path,
    port: int | None = None,
    home: Path | None = None,
    *,
    model_ref: str | None = None,
    worker_count: int | None = None,
    request_timeout_ms: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> EndpointInfo:
    """Start (or replace the model of) endpoint `name`; returns once it answers on its scoring URI."""
    model_dir, job_dir = Path(model_dir).absolute(), Path(job_dir).absolute()
    _check_model_dir(model_dir)
    if not (job_dir / inference_server.ENTRY_SCRIPT).is_file():
        raise CapcError(f"no {inference_server.ENTRY_SCRIPT} in {job_dir}.", "run `capc build SPEC` to generate it")
    if port is not None and not 1 <= port <= 65535:
        raise CapcError(f"--port must be between 1 and 65535, got {port}.")
    settings_file = deployment_settings(job_dir)
    settings = inference_server.ServerSettings(
        worker_count=worker_count or _local_worker_count(settings_file["environment"]),
        request_timeout_ms=request_timeout_ms or settings_file["request_timeout_ms"],
        environment=settings_file["environment"],
    )
    if settings.worker_count < 1:
        raise CapcError(f"worker count must be at least 1, got {settings.worker_count}.")
    model = model_ref or _model_ref(model_dir)
    folder = endpoint_dir(name, home)
    with locked(folder):
        ensure_secrets(folder)
        previous = read_state(folder)
        live = previous if previous and _front_end_answers(folder, previous) else None
        if live and port is not None and live.proxy.port != port:
            raise CapcError(
                f"endpoint `{name}` already serves on port {live.proxy.port}.",
                f"deploy without --port to keep that port, or `capc endpoints delete {name}` first",
            )
        if previous and not live:
            _stop_all(folder, previous, grace_s=5)
        if not live and port is not None and not port_is_free(port):
            raise CapcError(f"port {port} on {LOOPBACK} is already in use.", "pick another with --port, or leave it out")
        generation = _next_generation(previous)
        server = _start_server(folder, name, model_dir, job_dir, generation, settings, ready_timeout_s)
        now = _now()
        state = EndpointState(
            name=name, model=model, model_dir=str(model_dir), job_dir=str(job_dir), proxy=live.proxy if live else None,
            server=server, worker_count=settings.worker_count, request_timeout_ms=settings.request_timeout_ms,
            max_body_bytes=max_body_bytes, created=previous.created if previous else now, updated=now,
            history=(previous.history if previous else []),
        )
        if live:
            _switch(folder, live, state)
        else:
            preferred = previous.proxy.port if previous and previous.proxy else None
            state.proxy = _start_front_end(folder, state, port, preferred, ready_timeout_s)
        write_state(folder, state)
        _prune_generations(folder, state)
    return _info(folder, state, with_key=False)


def _local_worker_count(environment: dict) -> int:
    """One azmlinfsrv worker per core, or more when deployment.yml's WORKER_COUNT asks for more.

    Azure's default WORKER_COUNT is 1 (max_concurrent_requests_per_instance 1) on a VM of several cores; here one
    endpoint is the whole machine, and one worker would leave all cores but one idle under concurrent load.
    """
    try:
        asked = int(environment.get("WORKER_COUNT") or 1)
    except ValueError:
        raise CapcError(f"deployment.yml: WORKER_COUNT must be a whole number, got {environment['WORKER_COUNT']!r}.") from None
    return local_worker_count(asked, os.cpu_count() or 1)  # the rule the load budget measures with


def _check_model_dir(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise CapcError(f"model folder {model_dir} does not exist.")
    if not any(files for _, _, files in os.walk(model_dir) if "MLmodel" in files):
        raise CapcError(f"{model_dir} holds no MLflow model (no MLmodel file in it).")


def _model_ref(model_dir: Path) -> str:
    """name:version for a model under $CAPC_HOME/registry/<name>/<version>/model, else the folder's name."""
    parts = model_dir.parts
    if len(parts) >= 4 and parts[-1] == "model" and parts[-2].isdigit() and parts[-4] == "registry":
        return f"{parts[-3]}:{parts[-2]}"
    return model_dir.name


def azureml_model_dir(model_dir: Path) -> Path:
    """What AZUREML_MODEL_DIR points at. Azure mounts a registered model as <name>/<version>/<its folder>, so for
    a registry entry it is the version folder, with the MLflow folder inside, as score.py will find it on Azure."""
    version_dir = model_dir.parent
    return version_dir if (version_dir / "registration.json").is_file() else model_dir


def _next_generation(previous: EndpointState | None) -> int:
    if previous is None:
        return 1
    seen = [previous.server.generation if previous.server else 0] + [h.get("generation", 0) for h in previous.history]
    return max(seen) + 1


def _marker(folder: Path) -> str:
    # Every process of the endpoint has the folder (with its trailing slash) on its command line.
    return str(folder) + os.sep


def _start_server(folder, name, model_dir, job_dir, generation, settings, ready_timeout_s) -> Process:
    gen_dir = folder / f"gen-{generation}"
    if gen_dir.exists():
        shutil.rmtree(gen_dir)
    code_dir = gen_dir / "code"
    inference_server.snapshot_code(job_dir, code_dir)
    port = free_port()
    argv, env = inference_server.command(code_dir, azureml_model_dir(model_dir), port, settings, service_name=name)
    log_file = gen_dir / SERVER_LOG
    process = start_detached(argv, log_file, env, cwd=code_dir)
    problem = wait_until_healthy(process, port, "/", ready_timeout_s, expect=b"Healthy")
    if problem is None:
        problem = _warm_up(port, sample_request_file(code_dir), settings)
    if problem:
        stop(process.pid, _marker(folder), grace_s=5)
        raised = raised_errors(log_file)
        cause = f" The scoring script raised: {'; '.join(raised)}." if raised else ""
        raise CapcError(
            f"the inference server for `{name}` did not start: {problem}.{cause}\n--- {log_file} (last lines) ---\n{tail(log_file)}",
            "fix score.py or the model, then deploy again (a running endpoint keeps serving its previous model)",
        )
    return Process(pid=process.pid, port=port, generation=generation)


def _warm_up(port: int, sample: Path, settings) -> str | None:
    """Score the sample request on every worker before traffic comes: a broken score.py fails the deploy here."""
    if not sample.is_file():
        return None
    body = sample.read_bytes()
    for _ in range(settings.worker_count * 2):
        try:
            status, _headers, reply = http_post(
                port, "/score", body, {"Content-Type": "application/json"}, timeout=settings.request_timeout_ms / 1000 + 30
            )
        except OSError as exc:
            return f"scoring {SAMPLE_REQUEST} failed: {exc}"
        if status != 200:
            return f"scoring {SAMPLE_REQUEST} answered HTTP {status}: {reply[:500].decode(errors='replace')}"
    return None


def _start_front_end(folder: Path, state: EndpointState, requested: int | None, preferred: int | None, ready_timeout_s: float) -> Process:
    """On the port asked for (which must be free), else on the endpoint's previous port if free, else any free one."""
    if requested is not None and not port_is_free(requested):
        stop(state.server.pid, _marker(folder), grace_s=5)
        raise CapcError(f"port {requested} on {LOOPBACK} is already in use.", "pick another with --port, or leave it out")
    port = requested or (preferred if preferred and port_is_free(preferred) else free_port())
    write_state(folder, state)  # the front end reads its first server from state.json
    argv = python_argv("capc.serve.proxy", _marker(folder), str(port))
    process = start_detached(argv, folder / PROXY_LOG, dict(os.environ), cwd=folder)
    problem = _wait_front_end(folder, process, port, min(ready_timeout_s, 60.0))
    if problem:
        stop(process.pid, _marker(folder), grace_s=5)
        stop(state.server.pid, _marker(folder), grace_s=5)
        raise CapcError(f"the front end of `{state.name}` did not start: {problem}.\n{tail(folder / PROXY_LOG)}")
    return Process(pid=process.pid, port=port)


def _wait_front_end(folder: Path, process, port: int, timeout_s: float) -> str | None:
    headers = {"Authorization": f"Bearer {read_control_token(folder)}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"it exited with status {process.returncode}"
        try:
            status, _ = http_get(port, "/-/capc/status", headers, timeout=1.0)
            if status == 200:
                return None
        except OSError:
            pass
        time.sleep(0.05)
    return f"it did not answer within {timeout_s:.0f} s"


def _front_end_answers(folder: Path, state: EndpointState) -> bool:
    if not state.proxy or not is_ours(state.proxy.pid, _marker(folder)):
        return False
    try:
        status, _ = http_get(state.proxy.port, "/-/capc/status", {"Authorization": f"Bearer {read_control_token(folder)}"})
    except OSError:
        return False
    return status == 200


def _switch(folder: Path, live: EndpointState, state: EndpointState) -> None:
    """Point the front end at the new server, wait for the old one's requests, then stop the old one."""
    body = json.dumps({
        "port": state.server.port, "generation": state.server.generation, "model": state.model,
        "max_body_bytes": state.max_body_bytes, "request_timeout_ms": state.request_timeout_ms,
    }).encode()
    headers = {"Authorization": f"Bearer {read_control_token(folder)}", "Content-Type": "application/json"}
    try:
        status, _, reply = http_post(live.proxy.port, "/-/capc/switch", body, headers, timeout=state.request_timeout_ms / 1000 + 30)
    except OSError as exc:
        stop(state.server.pid, _marker(folder), grace_s=5)
        raise CapcError(f"could not switch endpoint `{state.name}` to the new model: {exc}") from None
    if status != 200:
        stop(state.server.pid, _marker(folder), grace_s=5)
        raise CapcError(f"could not switch endpoint `{state.name}` to the new model: HTTP {status} {reply[:300]!r}")
    if live.server:
        stop(live.server.pid, _marker(folder))
        state.history = live.history + [
            {"generation": live.server.generation, "model": live.model, "pid": live.server.pid, "replaced": state.updated}
        ]


def _prune_generations(folder: Path, state: EndpointState) -> None:
    """Keep the live generation's folder and the one before it (its server.log explains a rollback)."""
    keep = {state.server.generation, state.server.generation - 1}
    for gen_dir in folder.glob("gen-*"):
        number = gen_dir.name.removeprefix("gen-")
        if number.isdigit() and int(number) not in keep:
            shutil.rmtree(gen_dir, ignore_errors=True)


def _stop_all(folder: Path, state: EndpointState, grace_s: float) -> None:
    marker = _marker(folder)
    if state.proxy:
        stop(state.proxy.pid, marker, grace_s)
    if state.server:
        stop(state.server.pid, marker, grace_s)


# ---------------------------------------------------------------------------------------------- inspect


def list_endpoints(home: Path | None = None) -> list[EndpointInfo]:
    root = endpoints_root(home)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        state = read_state(folder)
        if state is not None:
            found.append(_info(folder, state, with_key=False))
    return found


def show(name: str, home: Path | None = None) -> EndpointInfo:
    folder, state = existing_endpoint(name, home)
    return _info(folder, state, with_key=True)


def keys(name: str, home: Path | None = None) -> dict:
    """{"primaryKey": ..., "secondaryKey": ...}, the shape `az ml online-endpoint get-credentials` prints."""
    folder, _ = existing_endpoint(name, home)
    return read_keys(folder)


def regenerate_key(name: str, key_type: str = "primary", home: Path | None = None) -> dict:
    """A new primary or secondary key; the front end takes it at once, the other key keeps working."""
    if key_type not in ("primary", "secondary"):
        raise CapcError(f"key type must be primary or secondary, got `{key_type}`.")
    folder, state = existing_endpoint(name, home)
    with locked(folder):
        current = read_keys(folder)
        current[f"{key_type}Key"] = new_key()
        write_keys(folder, current)
        if _front_end_answers(folder, state):
            headers = {"Authorization": f"Bearer {read_control_token(folder)}"}
            http_post(state.proxy.port, "/-/capc/reload-keys", b"", headers, timeout=10)
    return current


# ---------------------------------------------------------------------------------------------- delete


def delete(name: str, home: Path | None = None) -> str:
    """Stop the endpoint's processes and remove its folder (keys, logs, code snapshots); returns its name."""
    folder, state = existing_endpoint(name, home)
    with locked(folder):
        _stop_all(folder, state, grace_s=10)
        marker = _marker(folder)
        for entry in state.history:  # a server a crashed deploy could not stop
            stop(entry.get("pid"), marker, grace_s=5)
        shutil.rmtree(folder, ignore_errors=True)
    return state.name


# ---------------------------------------------------------------------------------------------- helpers


def existing_endpoint(name: str, home: Path | None) -> tuple[Path, EndpointState]:
    """The folder and state of the endpoint `name` means (capc.serve.naming: its own name, or its model's where that
    is unambiguous); CapcError naming the known ones when there is none."""
    from capc.serve.naming import resolve

    name = resolve(name, home)
    folder = endpoint_dir(name, home)
    state = read_state(folder)
    if state is None:
        known = [p.name for p in sorted(endpoints_root(home).glob("*")) if (p / "state.json").exists()]
        hint = f"endpoints: {', '.join(known)}" if known else "deploy one with `capc deploy NAME`"
        raise CapcError(f"no local endpoint named `{name}`.", hint)
    return folder, state


def running_endpoint(name: str, home: Path | None) -> tuple[Path, EndpointState]:
    """existing_endpoint, and its front end answers (CapcError when it does not)."""
    folder, state = existing_endpoint(name, home)
    if not _front_end_answers(folder, state):
        raise CapcError(f"endpoint `{name}` is not running.", f"start it again with `capc deploy {name}`")
    return folder, state


def _health(folder: Path, state: EndpointState) -> str:
    marker = _marker(folder)
    if not state.proxy or not is_ours(state.proxy.pid, marker):
        return "stopped"
    if not state.server or not is_ours(state.server.pid, marker):
        return "unhealthy"
    try:
        status, body = http_get(state.proxy.port, "/", timeout=2.0)
    except OSError:
        return "unhealthy"
    return "running" if status == 200 and b"Healthy" in body else "unhealthy"


def scoring_uri(port: int | None) -> str:
    return f"http://{LOOPBACK}:{port}/score" if port else ""


def _info(folder: Path, state: EndpointState, with_key: bool) -> EndpointInfo:
    port = state.proxy.port if state.proxy else None
    health = _health(folder, state)
    base = f"http://{LOOPBACK}:{port}" if port else ""
    return EndpointInfo(
        name=state.name,
        scoring_uri=scoring_uri(port),
        swagger_uri=f"{base}/swagger.json" if port else "",
        docs_uri=f"{base}/docs/" if port else "",
        model=state.model,
        state=health,
        provisioning_state="Succeeded" if health == "running" else "Failed",
        auth_mode="key",
        port=port,
        generation=state.server.generation if state.server else None,
        worker_count=state.worker_count,
        request_timeout_ms=state.request_timeout_ms,
        max_body_bytes=state.max_body_bytes,
        model_dir=state.model_dir,
        job_dir=state.job_dir,
        proxy_pid=state.proxy.pid if state.proxy else None,
        server_pid=state.server.pid if state.server else None,
        created=state.created,
        updated=state.updated,
        request_log=str(folder / REQUEST_LOG),
        primary_key=read_keys(folder)["primaryKey"] if with_key else None,
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
