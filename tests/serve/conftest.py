"""Fixtures of the serve-stage tests: one local online endpoint per test module, deployed twice over (params)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from capc import serve
from capc.errors import CapcError
from serve_fixtures import BODY_LIMIT, ENDPOINT_NAME, job_for, registered_model


@pytest.fixture(scope="module", params=["fixture", "generated"])
def endpoint(request, tmp_path_factory):
    """The endpoint, serving tests/serve/serve_assets/score.py, then the score.py that `capc build` generates.

    A deploy takes seconds (azmlinfsrv loads the model in every worker): one per module and score.py.
    """
    home = tmp_path_factory.mktemp("capc_home")
    job = job_for(request.param, home / "generated")
    model = registered_model(home, ENDPOINT_NAME, 1)
    info = serve.deploy(ENDPOINT_NAME, model, job, home=home, max_body_bytes=BODY_LIMIT)
    try:
        yield SimpleNamespace(home=home, job=job, info=info, port=info.port, key=serve.keys(ENDPOINT_NAME, home)["primaryKey"],
                              source=request.param)
    finally:
        try:
            serve.delete(ENDPOINT_NAME, home)
        except CapcError:
            pass
