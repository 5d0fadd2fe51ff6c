"""Backend, local endpoints: `capc deploy`, `capc endpoints ...`, `capc invoke` and `capc bench`.

Azure's inference server (azmlinfsrv) serves the generated score.py; capc's front end (proxy.py) adds what a
managed online endpoint adds in front of it: key authentication, limits, request logs, a Swagger UI page, and a
model switch without failed requests on redeploy.

endpoints.py deploys, lists, shows and deletes an endpoint and keeps its keys; endpoint_calls.py calls a running
one (invoke, bench); endpoint_logs.py reads its logs; the state it leaves on disk is state.py's.
"""

from capc.serve.bench import BenchResult
from capc.serve.endpoint_calls import InvokeResult, bench, invoke
from capc.serve.endpoint_logs import format_log_record, logs, server_logs
from capc.serve.endpoints import EndpointInfo, delete, deploy, keys, list_endpoints, regenerate_key, show

__all__ = [
    "BenchResult", "EndpointInfo", "InvokeResult", "bench", "delete", "deploy", "format_log_record", "invoke",
    "keys", "list_endpoints", "logs", "regenerate_key", "server_logs", "show",
]
