"""A fake Azure ML service for capc's Azure contract tests, on 127.0.0.1 only.

One HTTPS server (self-signed certificate, made per test) plays every Azure endpoint that azure-ai-ml talks to:
- the cloud metadata document (`ARM_CLOUD_METADATA_URL`: azure-ai-ml's own way to use a custom cloud),
- the Azure Resource Manager control plane of one workspace (computes, datastores, data, code, environments,
  jobs, models, online endpoints and deployments),
- workspace discovery and run history (child runs, run details, run data),
- blob storage (`<account>.blob.capc.test:<port>`: the datastore account URL azure-ai-ml builds from the cloud's
  storage suffix; tests resolve `*.capc.test` to 127.0.0.1), the workspace's blob store and its artifact store,
  where each completed child run's artifacts lie as Azure ML keeps them (ExperimentRun/dcid.<run>/outputs/...,
  logs/...): the real MLflow model a test gives its job type (`JobOutcome.model`), so `jobs.download` fetches
  a model that capc then really loads and measures,
- the online endpoints' scoring URIs.

It records every request, so tests assert on what capc (through azure-ai-ml) really sent. Faults are injected
per method and path (`fail`), and jobs move NotStarted -> Running -> a final status over successive GETs, with
child runs and the properties Azure ML sets on parents (best_child_run_id, score) and AutoML children (score).

Why HTTPS: azure-core refuses bearer tokens over plain HTTP, and azure-ai-ml builds blob account URLs with
https:// whatever the cloud says; a self-signed certificate trusted through REQUESTS_CA_BUNDLE covers both
without any test-only switch in capc.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from repo import REFERENCE_NAMES, REPO, TEST_DOMAIN

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-capc"
WORKSPACE = "ws-capc"
LOCATION = "westeurope"
TENANT = "77777777-8888-9999-aaaa-bbbbbbbbbbbb"
TOKEN_KEY = "capc-fake-azure-signing-key-0123456789"  # HS256: the fake checks what the fake credential signs
ENDPOINT_KEYS = ("primary-key-0001", "secondary-key-0002")
STORAGE_ACCOUNT = "capcstore"
BLOB_CONTAINER = "azureml-blobstore-0000"
ARTIFACT_CONTAINER = "azureml"  # workspaceartifactstore: run artifacts under ExperimentRun/dcid.<run id>/
# Where a completed run's MLflow model lies among its artifacts: AutoML logs outputs/mlflow-model, capc's trial
# scripts save theirs to outputs/model (uploaded with the rest of ./outputs when the run ends).
MODEL_ARTIFACTS = {"AutoML": "outputs/mlflow-model", "Sweep": "outputs/model"}
STORAGE_DOMAIN = TEST_DOMAIN  # <account>.blob.capc.test resolves to 127.0.0.1 under the `no_outbound` guard
RM_PROVIDER = "Microsoft.MachineLearningServices"


# ---------------------------------------------------------------- certificate


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and *.blob.capc.test (EC P-256: fast to make)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "capc fake azure")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName(f"*.blob.{STORAGE_DOMAIN}"), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "fake-azure-cert.pem", folder / "fake-azure-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


# ---------------------------------------------------------------- records and scripted behaviour


@dataclass
class Recorded:
    method: str
    host: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def is_blob(self) -> bool:
        return ".blob." in self.host

    def __repr__(self) -> str:
        return f"{self.method} {self.host}{self.path}"


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int
    code: str
    message: str
    times: int | None  # None: every time

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and bool(self.pattern.search(path)) and (self.times is None or self.times > 0)


@dataclass
class JobOutcome:
    """How a submitted job of one type ends: status, the children's primary-metric scores, an error."""

    status: str = "Completed"
    scores: list = field(default_factory=lambda: [0.8, 0.9, 0.85])
    error: str | None = None
    error_code: str = "UserError"
    registers: str | None = None  # a pipeline's select-best step: the model name it registers on completion
    model: Path | None = None  # an MLflow model folder: every completed child's artifacts hold a copy of it


@dataclass
class JobSim:
    name: str
    job_type: str
    resource: dict
    outcome: JobOutcome
    gets: int = 0
    children: list = field(default_factory=list)
    cancelled: bool = False
    registered: bool = False


class FakeAzureML:
    """The fake service; `start()` it (or use the `fake_azure` fixture), point azure-ai-ml at `env()`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.requests: list[Recorded] = []
        self.resources: dict[str, dict] = {}
        self.blobs: dict[str, tuple[bytes, dict]] = {}
        self.faults: list[Fault] = []
        self.jobs: dict[str, JobSim] = {}
        self.job_outcomes: dict[str, JobOutcome] = {
            "AutoML": JobOutcome(scores=[0.86, 0.91, 0.89]),
            "Sweep": JobOutcome(scores=[0.88, 0.93, 0.9]),
            "Pipeline": JobOutcome(scores=[], registers="bankmarketing"),
        }
        self.polls_to_finish = 4  # GETs of a job before it reaches its final status
        self.scoring_response: object = {"predictions": ["no", "yes"]}
        self.endpoint_keys = list(ENDPOINT_KEYS)
        self.lock = threading.RLock()  # _advance holds it while _store takes it again
        self.clock = 0
        # The workspace region's VM sizes and per-family vCPU usage (`capc plan --target azure` reads both).
        self.region_vm_sizes: list[dict] = [
            _vm_size("Standard_DS3_v2", "standardDSv2Family", 4, 0),
            _vm_size("Standard_NC4as_T4_v3", "standardNCASv3_T4Family", 4, 1),
        ]
        self.region_usages: list[dict] = [
            self.family_usage("standardDSv2Family", in_use=0, limit=24),
            self.family_usage("standardNCASv3_T4Family", in_use=0, limit=8),
        ]
        self._server: ThreadingHTTPServer | None = None
        self._seed_workspace()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeAzureML":
        cert_file, key_file = make_certificate(self.folder)
        self.ca_file = cert_file
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-azure", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cloud_name(self) -> str:
        return f"CapcFake{self.port}"  # one name per server: azure-ai-ml caches clouds by name

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/metadata/endpoints?api-version=2019-05-01"

    def env(self) -> dict[str, str]:
        """Environment that makes azure-ai-ml use this fake: its cloud metadata and its certificate."""
        return {"ARM_CLOUD_METADATA_URL": self.metadata_url, "REQUESTS_CA_BUNDLE": str(self.ca_file)}

    @property
    def workspace_id(self) -> str:
        return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/{RM_PROVIDER}/workspaces/{WORKSPACE}"

    # ------------------------------------------------------------ test controls and queries

    def fail(self, method: str, path_regex: str, status: int, code: str, message: str, times: int | None = None) -> None:
        """Answer requests whose path matches with an ARM error (status, code, message); status 0 hangs up instead."""
        self.faults.append(Fault(method, re.compile(path_regex, re.IGNORECASE), status, code, message, times))

    def runs_leave(self, model: Path) -> None:
        """Every completed AutoML and sweep child run leaves the MLflow model at `model` in its artifacts, unless a
        test gave its job type another (JobOutcome.model)."""
        for job_type in MODEL_ARTIFACTS:
            if self.job_outcomes[job_type].model is None:
                self.job_outcomes[job_type].model = model

    def find(self, method: str, path_regex: str, blob: bool | None = None) -> list[Recorded]:
        pattern = re.compile(path_regex, re.IGNORECASE)
        return [
            r for r in self.requests
            if r.method == method and pattern.search(r.path) and (blob is None or r.is_blob == blob)
        ]

    def put_resource(self, relative: str, body: dict) -> dict:
        """Seed a resource under the workspace (e.g. an existing compute)."""
        path = f"{self.workspace_id}/{relative}"
        resource = {**body, "id": path, "name": relative.rsplit("/", 1)[-1]}
        self.resources[path.lower()] = resource
        return resource

    def resource(self, relative: str) -> dict | None:
        return self.resources.get(f"{self.workspace_id}/{relative}".lower())

    def _seed_workspace(self) -> None:
        for name, container, default in (("workspaceblobstore", BLOB_CONTAINER, True), ("workspaceartifactstore", ARTIFACT_CONTAINER, False)):
            self.put_resource(
                f"datastores/{name}",
                {
                    "type": f"{RM_PROVIDER}/workspaces/datastores",
                    "properties": {
                        "datastoreType": "AzureBlob",
                        "accountName": STORAGE_ACCOUNT,
                        "containerName": container,
                        "endpoint": "core.windows.net",
                        "protocol": "https",
                        "credentials": {"credentialsType": "AccountKey"},
                        "isDefault": default,
                    },
                },
            )

    def family_usage(self, family: str, in_use: int, limit: int) -> dict:
        """One row of the region's usage list, as Azure ML answers it for a VM family."""
        return {
            "id": f"/subscriptions/{SUBSCRIPTION}/providers/{RM_PROVIDER}/locations/{LOCATION}/usages/{family}",
            "type": f"{RM_PROVIDER}/vmFamily/usages",
            "unit": "Count",
            "currentValue": in_use,
            "limit": limit,
            "name": {"value": family, "localizedValue": f"{family} Cluster Dedicated vCPUs"},
        }

    def workspace_body(self) -> dict:
        return {
            "id": self.workspace_id,
            "name": WORKSPACE,
            "type": f"{RM_PROVIDER}/workspaces",
            "location": LOCATION,
            "kind": "Default",
            "properties": {
                "friendlyName": WORKSPACE,
                "discoveryUrl": f"{self.url}/discovery",
                "workspaceId": "11111111-2222-3333-4444-555555555555",
                "mlFlowTrackingUri": f"azureml://{LOCATION}.api.azureml.ms/mlflow/v1.0{self.workspace_id}",
                "storageAccount": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Storage/storageAccounts/{STORAGE_ACCOUNT}",
                "provisioningState": "Succeeded",
            },
        }

    # ------------------------------------------------------------ request handling

    def handle(self, req: Recorded) -> tuple[int, dict, bytes]:
        with self.lock:
            self.requests.append(req)
            for fault in self.faults:
                if fault.matches(req.method, req.path):
                    if fault.times is not None:
                        fault.times -= 1
                    return _error(fault.status, fault.code, fault.message)
        if req.is_blob:
            return self._blob(req)
        path = req.path
        if path.startswith("/metadata/endpoints"):
            return _json(200, [self._cloud_metadata()])
        if path == "/discovery":  # anonymous, as Azure ML's discovery document is
            return _json(200, {key: self.url for key in ("api", "catalog", "experimentation", "history", "hyperdrive", "modelmanagement", "pipelines")})
        if path.startswith("/score/"):  # the endpoint's own front end: its keys, not ARM tokens
            return self._score(req)
        if not self._authorized(req):
            return _error(401, "InvalidAuthenticationToken", "The access token is invalid or has expired.")
        if path.startswith("/history/"):
            return self._run_history(req)
        if path.startswith("/subscriptions/"):
            return self._arm(req)
        return _error(404, "NotFound", f"no route for {req.method} {path}")

    def _authorized(self, req: Recorded) -> bool:
        """A bearer JWT the fake credential signed, unexpired, for this resource manager."""
        import jwt

        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return False
        try:
            claims = jwt.decode(auth[len("Bearer "):], TOKEN_KEY, algorithms=["HS256"], options={"verify_aud": False})
        except jwt.PyJWTError:
            return False
        return claims.get("aud", "").rstrip("/") == self.url

    def _cloud_metadata(self) -> dict:
        return {
            "name": self.cloud_name,
            "portal": "https://portal.capc.test",
            "resourceManager": f"{self.url}/",
            "authentication": {"loginEndpoint": f"{self.url}/login", "audiences": [f"{self.url}/"]},
            "suffixes": {"storage": f"{STORAGE_DOMAIN}:{self.port}"},
        }

    # ------------------------------------------------------------ ARM

    ARM = re.compile(
        r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?"
        r"(?:/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)(?P<rest>/.*)?)?$",
        re.IGNORECASE,
    )

    REGION = re.compile(
        r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.MachineLearningServices/locations/(?P<loc>[^/]+)/(?P<what>usages|vmSizes)$",
        re.IGNORECASE,
    )

    def _arm(self, req: Recorded) -> tuple[int, dict, bytes]:
        region = self.REGION.match(req.path)
        if region and req.method == "GET":
            if region["sub"].lower() != SUBSCRIPTION or region["loc"].lower() != LOCATION:
                return _error(404, "NotFound", f"no usage data for {region['sub']} in {region['loc']}")
            if region["what"].lower() == "usages":
                return _json(200, {"value": self.region_usages, "nextLink": None})
            return _json(200, {"value": self.region_vm_sizes})
        m = self.ARM.match(req.path)
        if not m:
            return _error(404, "NotFound", f"no route for {req.path}")
        if m["sub"].lower() != SUBSCRIPTION:
            return _error(404, "SubscriptionNotFound", f"The subscription '{m['sub']}' could not be found.")
        if m["rg"] and m["rg"].lower() != RESOURCE_GROUP.lower():
            return _error(404, "ResourceGroupNotFound", f"Resource group '{m['rg']}' could not be found.")
        if m["ws"] and m["ws"].lower() != WORKSPACE.lower():
            return _error(
                404, "ResourceNotFound",
                f"The Resource '{RM_PROVIDER}/workspaces/{m['ws']}' under resource group '{m['rg']}' was not found.",
            )
        rest = (m["rest"] or "").rstrip("/")
        if not rest:
            return _json(200, self.workspace_body()) if req.method == "GET" else _error(405, "MethodNotAllowed", "read only")
        parts = [unquote(p) for p in rest.strip("/").split("/")]
        kind = parts[0].lower()
        if kind == "jobs":
            return self._jobs(req, parts)
        if kind == "datastores" and len(parts) == 3 and parts[2] == "listSecrets":
            return _json(200, {"secretsType": "Sas", "sasToken": "sv=2021-08-06&ss=b&sig=fake"})
        if kind == "datastores" and len(parts) == 1:
            stores = [r for k, r in self.resources.items() if r and "/datastores/" in k]
            if req.query.get("isDefault", [""])[0].lower() == "true":
                stores = [r for r in stores if r["properties"].get("isDefault")]
            return _json(200, {"value": stores})
        if kind == "codes" and parts[-1] == "startPendingUpload":
            return self._pending_upload(parts)
        if kind == "onlineendpoints":
            return self._endpoints(req, parts)
        if len(parts) == 3 and parts[2] == "versions" and req.method == "GET":
            return self._list_versions(req, parts)
        return self._generic(req)

    def _generic(self, req: Recorded) -> tuple[int, dict, bytes]:
        key = req.path.rstrip("/").lower()
        if req.method == "GET":
            found = self.resources.get(key)
            return _json(200, found) if found else _error(404, "ResourceNotFound", f"{req.path} was not found.")
        if req.method == "PUT":
            body = req.json or {}
            existed = key in self.resources
            resource = self._store(req.path.rstrip("/"), body)
            return _json(200 if existed else 201, resource)
        if req.method == "DELETE":
            found = self.resources.pop(key, None)
            return (200, {}, b"") if found else (204, {}, b"")
        return _error(405, "MethodNotAllowed", f"{req.method} {req.path}")

    def _store(self, path: str, body: dict) -> dict:
        name = path.rsplit("/", 1)[-1]
        props = body.setdefault("properties", {})
        if "/computes/" in path.lower():
            props["provisioningState"] = "Succeeded"
            body.setdefault("location", LOCATION)
        with self.lock:
            self.clock += 1  # creation order, so "latest" means something in listings
        stamp = (datetime.datetime(2026, 11, 23, 8, 0, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=self.clock)).strftime("%Y-%m-%dT%H:%M:%SZ")
        resource = {
            **body,
            "id": path,
            "name": name,
            "systemData": {
                "createdAt": stamp, "createdBy": "capc-tests", "createdByType": "User",
                "lastModifiedAt": stamp, "lastModifiedBy": "capc-tests", "lastModifiedByType": "User",
            },
        }
        versioned = re.search(r"/(models|data|environments|codes)/([^/]+)/versions/([^/]+)$", path, re.IGNORECASE)
        if versioned and versioned[1].lower() == "models":
            props.setdefault("flavors", {"python_function": {"data": {"loader_module": "mlflow.sklearn"}}})
        with self.lock:
            self.resources[path.lower()] = resource
            if versioned:  # the container tracks the latest and next version, as Azure ML's does
                container = path[: path.lower().rindex("/versions/")]
                version = versioned[3]
                following = str(int(version) + 1) if version.isdigit() else None
                self.resources[container.lower()] = {
                    "id": container,
                    "name": versioned[2],
                    "properties": {"latestVersion": version, "nextVersion": following, "isArchived": False},
                }
        return resource

    def _list_versions(self, req: Recorded, parts: list[str]) -> tuple[int, dict, bytes]:
        prefix = f"{self.workspace_id}/{parts[0]}/{parts[1]}/versions/".lower()
        found = [r for k, r in self.resources.items() if k.startswith(prefix)]
        found.sort(key=lambda r: r["systemData"]["createdAt"], reverse=True)  # newest first, as Azure ML lists them
        wanted_hash = req.query.get("hash", [None])[0]
        if wanted_hash:
            found = [r for r in found if r["properties"].get("properties", {}).get("azureml.codeHash") == wanted_hash or r["properties"].get("hash") == wanted_hash]
        return _json(200, {"value": found})

    def _pending_upload(self, parts: list[str]) -> tuple[int, dict, bytes]:
        container = f"code-{uuid.uuid4().hex[:12]}"
        blob = f"https://{STORAGE_ACCOUNT}.blob.{STORAGE_DOMAIN}:{self.port}/{container}"
        return _json(
            200,
            {
                "blobReferenceForConsumption": {
                    "blobUri": blob,
                    "storageAccountArmId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Storage/storageAccounts/{STORAGE_ACCOUNT}",
                    "credential": {"credentialType": "SAS", "sasUri": f"{blob}?sv=2021-08-06&sig=fake"},
                },
                "pendingUploadId": uuid.uuid4().hex,
                "pendingUploadType": "TemporaryBlobReference",
            },
        )

    # ------------------------------------------------------------ jobs

    def _jobs(self, req: Recorded, parts: list[str]) -> tuple[int, dict, bytes]:
        if len(parts) < 2:
            return _json(200, {"value": [sim.resource for sim in self.jobs.values()]})
        name = parts[1]
        sim = self.jobs.get(name)
        if len(parts) == 3 and parts[2] == "cancel" and req.method == "POST":
            if not sim:
                return _error(404, "UserError", f"Job {name} was not found.")
            sim.cancelled = True
            sim.resource["properties"]["status"] = "Canceled"
            return 202, {"Location": f"{self.url}{req.path}-status"}, b""
        if req.method == "PUT":
            body = req.json or {}
            job_type = body.get("properties", {}).get("jobType", "Command")
            resource = self._store(req.path, body)
            props = resource["properties"]
            props["status"] = "NotStarted"
            props["services"] = {"Studio": {"endpoint": f"https://ml.azure.com/runs/{name}?wsid={self.workspace_id}", "jobServiceType": "Studio"}}
            props.setdefault("properties", {})
            outcome = self.job_outcomes.get(job_type, JobOutcome(scores=[]))
            self.jobs[name] = JobSim(name, job_type, resource, outcome)
            return _json(201, resource)
        if req.method == "GET":
            if not sim:  # a child run is a job too: `jobs.get(child)` works on Azure
                child = self.resources.get(f"{self.workspace_id}/jobs/{name}".lower())
                return _json(200, child) if child else _error(404, "UserError", f"Job {name} was not found.")
            self._advance(sim)
            return _json(200, sim.resource)
        return _error(405, "MethodNotAllowed", f"{req.method} {req.path}")

    def _advance(self, sim: JobSim) -> None:
        """Each GET moves the job on: Running with part of its children, then its final status with all.

        azure-ai-ml reads a job twice per look (jobs.get, and jobs.list of its children gets it again), hence
        polls_to_finish counts GETs, not looks. Like Azure ML, the parent names its best completed child so far.
        """
        with self.lock:
            if sim.cancelled:
                return
            sim.gets += 1
            props = sim.resource["properties"]
            scores = sim.outcome.scores
            final = sim.gets >= self.polls_to_finish
            visible = scores if final else scores[: max(1, (len(scores) + 1) // 2)]
            self._set_children(sim, visible, final=final)
            props["status"] = sim.outcome.status if final else "Running"
            if final and sim.outcome.registers and sim.outcome.status == "Completed" and not sim.registered:
                sim.registered = True
                self._register_from_job(sim)
            done = [(i, s) for i, s in enumerate(visible) if sim.children[i]["status"] == "Completed"]
            if not done or (final and sim.outcome.status != "Completed"):
                return
            goal = _goal_of(sim.resource)
            best, value = max(done, key=lambda pair: pair[1] if goal == "maximize" else -pair[1])
            best_id = sim.children[best]["runId"]
            if sim.job_type == "AutoML":
                if final:
                    props.setdefault("tags", {})["automl_best_child_run_id"] = best_id
            else:
                props["properties"].update({"best_child_run_id": best_id, "score": str(value), "best_metric_status": "Succeeded"})

    def _register_from_job(self, sim: JobSim) -> None:
        """What mlflow.register_model does in a pipeline step: the next version of the model, from the job."""
        name = sim.outcome.registers
        container = self.resources.get(f"{self.workspace_id}/models/{name}".lower())
        version = (container or {}).get("properties", {}).get("nextVersion") or "1"
        path = f"{self.workspace_id}/models/{name}/versions/{version}"
        body = {"properties": {"modelType": "mlflow_model", "modelUri": f"azureml://jobs/{sim.name}/outputs/artifacts/paths/model/", "tags": {}, "properties": {}}}
        self._store(path, body)

    def _set_children(self, sim: JobSim, scores: list, final: bool) -> None:
        children = []
        for i, score in enumerate(scores):
            run_id = f"{sim.name}_{i}"
            status = "Completed" if final or i < len(scores) - 1 else "Running"
            properties = {}
            if sim.job_type == "AutoML" and status == "Completed":  # AutoML children carry their score
                properties = {"score": str(score), "run_algorithm": ["LightGBM", "XGBoostClassifier", "RandomForest"][i % 3]}
            children.append({"runId": run_id, "parentRunId": sim.name, "status": status, "displayName": run_id, "properties": properties, "tags": {}})
        sim.children = children
        for child in children:  # a child is a job too: `jobs.get(child)` works on Azure
            run_id = child["runId"]
            path = f"{self.workspace_id}/jobs/{run_id}"
            # Azure ML names a run's artifact folder as its default output.
            artifacts = {"jobOutputType": "uri_folder", "mode": "ReadWriteMount", "uri": f"azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.{run_id}"}
            self.resources[path.lower()] = {
                "id": path,
                "name": run_id,
                "properties": {
                    "jobType": "Command", "status": child["status"], "properties": child["properties"], "tags": {}, "command": "train",
                    "environmentId": "azureml:env:1", "computeId": "cpu-cluster", "outputs": {"default": artifacts},
                },
            }
            if child["status"] == "Completed":
                self._store_artifacts(sim, run_id)

    def _store_artifacts(self, sim: JobSim, run_id: str) -> None:
        """What a finished run leaves in the artifact store: its log, and the MLflow model its job type saves."""
        prefix = f"/{ARTIFACT_CONTAINER}/ExperimentRun/dcid.{run_id}"
        with self.lock:
            if f"{prefix}/user_logs/std_log.txt" in self.blobs:
                return
            self.blobs[f"{prefix}/user_logs/std_log.txt"] = (f"{run_id}: training finished\n".encode(), {})
            model = sim.outcome.model
            if model is None or sim.job_type not in MODEL_ARTIFACTS:
                return
            for file in sorted(p for p in Path(model).rglob("*") if p.is_file()):
                self.blobs[f"{prefix}/{MODEL_ARTIFACTS[sim.job_type]}/{file.relative_to(model).as_posix()}"] = (file.read_bytes(), {})

    def _run_history(self, req: Recorded) -> tuple[int, dict, bytes]:
        if req.path.endswith("/rundata") and req.method == "POST":  # a run's metadata: capc's runs name no typed outputs
            run_id = (req.json or {}).get("runId", "")
            return _json(200, {"runMetadata": {"runId": run_id, "status": "Completed", "outputs": {}}})
        m = re.search(r"/runs/(?P<run>[^/]+)/(?P<what>children|details)$", req.path)
        if not m:
            return _error(404, "NotFound", f"no route for {req.path}")
        sim = self.jobs.get(m["run"])
        if m["what"] == "children":
            return _json(200, {"value": sim.children if sim else []})
        if not sim:
            return _error(404, "RunNotFound", f"Run {m['run']} was not found.")
        details = {"runId": sim.name, "status": sim.resource["properties"]["status"]}
        if sim.outcome.error:
            details["error"] = {"error": {"code": sim.outcome.error_code, "message": sim.outcome.error}}
        return _json(200, details)

    # ------------------------------------------------------------ online endpoints

    def _endpoints(self, req: Recorded, parts: list[str]) -> tuple[int, dict, bytes]:
        name = parts[1] if len(parts) > 1 else None
        tail = parts[2:]
        if name and tail == ["listKeys"]:
            return _json(200, {"primaryKey": self.endpoint_keys[0], "secondaryKey": self.endpoint_keys[1]})
        if name and tail == ["regenerateKeys"]:
            which = 0 if (req.json or {}).get("keyType", "").lower() == "primary" else 1
            self.endpoint_keys[which] = f"{('primary', 'secondary')[which]}-key-{uuid.uuid4().hex[:8]}"
            return 200, {}, b""
        if name and tail == ["token"]:
            return _json(200, {"accessToken": "aml-token", "expiryTimeUtc": 0, "refreshAfterTimeUtc": 0, "tokenType": "Bearer"})
        if name and len(tail) == 3 and tail[0] == "deployments" and tail[2] == "getLogs":
            return _json(200, {"content": f"{tail[1]}: azmlinfsrv started\nscoring ready\n"})
        if name and tail == ["deployments"] and req.method == "GET":
            prefix = f"{self.workspace_id}/onlineEndpoints/{name}/deployments/".lower()
            return _json(200, {"value": [r for k, r in self.resources.items() if k.startswith(prefix)]})
        if req.method == "PUT":
            body = req.json or {}
            props = body.setdefault("properties", {})
            props["provisioningState"] = "Succeeded"
            body.setdefault("location", LOCATION)
            if tail:  # a deployment
                props.setdefault("scaleSettings", {"scaleType": "Default"})
            else:
                props["scoringUri"] = f"{self.url}/score/{name}"
                props["swaggerUri"] = f"{self.url}/score/{name}/swagger.json"
            resource = self._store(req.path, body)
            return _json(200, resource)
        if req.method == "DELETE":
            key = req.path.lower()
            self.resources = {k: v for k, v in self.resources.items() if not (k == key or k.startswith(key + "/"))}
            return 200, {}, b""
        return self._generic(req)

    def _score(self, req: Recorded) -> tuple[int, dict, bytes]:
        if req.headers.get("authorization") not in {f"Bearer {key}" for key in self.endpoint_keys}:
            return 401, {}, b""
        return _json(200, self.scoring_response)

    # ------------------------------------------------------------ blob storage

    def _blob(self, req: Recorded) -> tuple[int, dict, bytes]:
        key = unquote(req.path)  # blob names are stored decoded, as Azure Storage does
        stamp = {"ETag": '"0x1"', "Last-Modified": "Mon, 23 Nov 2026 08:00:00 GMT"}
        comp = req.query.get("comp", [None])[0]
        if req.method == "PUT" and comp == "metadata":
            meta = {k[len("x-ms-meta-"):]: v for k, v in req.headers.items() if k.startswith("x-ms-meta-")}
            data = self.blobs.get(key, (b"", {}))[0]
            self.blobs[key] = (data, meta)
            return 200, stamp, b""
        if req.method == "PUT":
            meta = {k[len("x-ms-meta-"):]: v for k, v in req.headers.items() if k.startswith("x-ms-meta-")}
            self.blobs[key] = (req.body, meta)
            return 201, stamp, b""
        if req.method in ("HEAD", "GET") and key in self.blobs:
            data, meta = self.blobs[key]
            headers = {**stamp, "x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
            headers.update({f"x-ms-meta-{k}": v for k, v in meta.items()})
            wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", req.headers.get("x-ms-range") or req.headers.get("range") or "")
            if req.method == "GET" and wanted:  # a download asks for its first chunk: 206 with the part, as Azure does
                if not data:
                    return 416, {"x-ms-error-code": "InvalidRange"}, b""
                first, last = int(wanted[1]), min(int(wanted[2] or len(data) - 1), len(data) - 1)
                return 206, {**headers, "Content-Range": f"bytes {first}-{last}/{len(data)}"}, data[first:last + 1]
            return 200, headers, data
        if req.method == "GET" and comp == "list":
            return 200, {"Content-Type": "application/xml"}, self._blob_listing(key, req.query.get("prefix", [""])[0])
        return 404, {"x-ms-error-code": "BlobNotFound"}, b""

    def _blob_listing(self, container: str, prefix: str) -> bytes:
        """List Blobs of one container (one page): the blobs whose names start with `prefix`."""
        from xml.sax.saxutils import escape

        start = f"{container.rstrip('/')}/{prefix}"
        entries = []
        for key in sorted(k for k in self.blobs if k.startswith(start)):
            data, meta = self.blobs[key]
            metadata = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in sorted(meta.items()))
            entries.append(
                f"<Blob><Name>{escape(key[len(container.rstrip('/')) + 1:])}</Name><Properties>"
                f"<Last-Modified>Mon, 23 Nov 2026 08:00:00 GMT</Last-Modified><Etag>0x1</Etag><Content-Length>{len(data)}</Content-Length>"
                f"<Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType></Properties>"
                f"<Metadata>{metadata}</Metadata></Blob>"
            )
        return (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Prefix>{escape(prefix)}</Prefix>'
                f'<Blobs>{"".join(entries)}</Blobs><NextMarker /></EnumerationResults>').encode()

    def blob_paths(self) -> list[str]:
        return sorted(self.blobs)


def _vm_size(name: str, family: str, vcpus: int, gpus: int) -> dict:
    return {
        "name": name, "family": family, "vCPUs": vcpus, "gpus": gpus, "osVhdSizeMB": 1047552, "maxResourceVolumeMB": 28672,
        "memoryGB": 14.0, "lowPriorityCapable": True, "premiumIO": True, "supportedComputeTypes": ["AmlCompute", "ComputeInstance"],
    }


def _goal_of(resource: dict) -> str:
    props = resource.get("properties", {})
    objective = props.get("objective") or {}
    goal = (objective.get("goal") or "").lower()
    if goal:
        return goal
    metric = ((props.get("taskDetails") or {}).get("primaryMetric") or "").lower()
    return "minimize" if "error" in metric else "maximize"


def _json(status: int, body) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _error(status: int, code: str, message: str) -> tuple[int, dict, bytes]:
    status_, headers, body = _json(status, {"error": {"code": code, "message": message}})
    return status_, {**headers, "x-ms-error-code": code}, body


def _handler_for(fake: FakeAzureML):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            req = Recorded(
                method=self.command,
                host=self.headers.get("Host", ""),
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                status, headers, payload = fake.handle(req)
            except Exception as exc:  # a bug in the fake: answer 500 with the reason, never hang the client
                status, headers, payload = _json(500, {"error": {"code": "FakeServiceBug", "message": repr(exc)}})
            if status == 0:  # an injected hang-up: the client sees the connection drop, as when a network fails
                self.close_connection = True
                return
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD" and payload:
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve

        def log_message(self, *args):
            pass

    return Handler


def schema_unavailable(url, requests_pipeline):
    """Stands in for azure-ai-ml's download of the MLTable JSON schema from a public CDN."""
    raise ConnectionError(f"{url}: not reachable from the tests")


def issue_token(audience: str, lifetime: int = 3600) -> str:
    """A JWT like Entra ID's: audience, tenant, expiry (azure-ai-ml decodes the tokens it gets for pipelines)."""
    import jwt

    now = int(time.time())
    claims = {"aud": audience, "tid": TENANT, "oid": "00000000-0000-0000-0000-0000000000aa", "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, TOKEN_KEY, algorithm="HS256")


class FakeCredential:
    """A TokenCredential: a signed token per scope (or a fixed string), or the error a real credential raises."""

    def __init__(self, token: str | None = None, error: Exception | None = None):
        self.token = token
        self.error = error
        self.scopes: list = []

    def _token(self, scopes) -> tuple[str, int]:
        self.scopes.append(scopes)
        if self.error:
            raise self.error
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        return (self.token or issue_token(audience)), int(time.time()) + 3600

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken(*self._token(scopes))

    def get_token_info(self, *scopes, options=None):
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(*self._token(scopes))


# ---------------------------------------------------------------- compiled job folders

# The cases of the dry-run goldens (tests/azure/golden/azure_dry_run/<name>[-<only>].txt): (spec name, --only).
DRY_RUN_CASES = [(name, None) for name in REFERENCE_NAMES] + [("bankmarketing", "pipeline")]


def compiled_job_dir(name: str, scratch: Path) -> Path:
    """generated/<name>/ when the build has been committed, else a fresh `capc build` of specs/<name>.yaml."""
    generated = REPO / "generated" / name
    if (generated / "manifest.json").is_file():
        return generated
    target = scratch / "generated" / name
    if not (target / "manifest.json").is_file():
        from capc.artifacts import write_tree
        from capc.build import compile_spec
        from capc.spec import load_spec

        spec = load_spec(REPO / "specs" / f"{name}.yaml")
        write_tree(target, compile_spec(spec, scratch / "generated"))
    return target


