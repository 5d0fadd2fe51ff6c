"""Backend, local endpoints: `capc deploy`, `capc endpoints ...`, `capc invoke` and `capc bench`.

Azure's inference server (azmlinfsrv) serves the generated score.py; capc's front end (proxy.py) adds what a
managed online endpoint adds in front of it: key authentication, limits, request logs, a Swagger UI page, and a
model switch without failed requests on redeploy.
"""

from capc.serve.bench import BenchResult
from capc.serve.endpoints import (
    EndpointInfo,
    InvokeResult,
    bench,
    delete,
    deploy,
    format_log_record,
    invoke,
    keys,
    list_endpoints,
    logs,
    regenerate_key,
    server_logs,
    show,
)

__all__ = [
    "BenchResult", "EndpointInfo", "InvokeResult", "bench", "delete", "deploy", "format_log_record", "invoke",
    "keys", "list_endpoints", "logs", "regenerate_key", "server_logs", "show",
]
