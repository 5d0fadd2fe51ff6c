"""deployment.min_requests_per_s and deployment.load: defaults from the schema, and each problem with its message."""

from __future__ import annotations

from pathlib import Path

from capc.spec import load_spec, schema_default
from repo import write_spec as write
from test_spec_validation import BASE, only_problem, problems


def test_the_load_defaults_to_four_clients_and_no_budget(workdir: Path) -> None:
    deployment = load_spec(write(workdir, BASE)).data["deployment"]
    assert deployment["load"] == {"concurrency": 4} == {"concurrency": schema_default("deployment.load.concurrency")}
    assert "min_requests_per_s" not in deployment
    spec = load_spec(write(workdir, BASE + "deployment:\n  min_requests_per_s: 300\n  load: {max_p99_ms: 25}\n"))
    assert spec.data["deployment"]["min_requests_per_s"] == 300 and spec.data["deployment"]["load"] == {"concurrency": 4, "max_p99_ms": 25}


def test_the_load_budget_is_positive_and_the_concurrency_bounded(workdir: Path) -> None:
    assert "deployment.min_requests_per_s" in only_problem(write(workdir, BASE + "deployment:\n  min_requests_per_s: 0\n"))
    assert "deployment.load.concurrency" in only_problem(write(workdir, BASE + "deployment:\n  load: {concurrency: 0}\n"))
    assert "deployment.load.max_p99_ms" in only_problem(write(workdir, BASE + "deployment:\n  load: {max_p99_ms: -1}\n"))
    assert "deployment.load.clients" in only_problem(write(workdir, BASE + "deployment:\n  load: {clients: 4}\n"))


def test_the_latency_under_load_must_be_below_the_request_timeout(workdir: Path) -> None:
    path = write(workdir, BASE + "deployment:\n  request_timeout_ms: 1000\n  load: {max_p99_ms: 1000}\n")
    assert only_problem(path).endswith(
        "deployment.load.max_p99_ms: 1000 ms is not below request_timeout_ms 1000 (requests time out before that latency; "
        "lower max_p99_ms or raise request_timeout_ms)"
    )


def test_the_load_budget_is_for_tabular_models(workdir: Path) -> None:
    text = "name: mri\ndataset:\n  path: data/imgs\n  format: image_folder\ntask: image_classification\nmetric: accuracy\n"
    (workdir / "data" / "imgs").mkdir(parents=True, exist_ok=True)
    found = problems(write(workdir, text + "deployment:\n  min_requests_per_s: 300\n  load: {max_p99_ms: 25}\n"))
    assert any(p.endswith("deployment.min_requests_per_s: a load budget is measured with rows of a table; image_classification has none "
                          "(remove min_requests_per_s)") for p in found)
    assert any(p.endswith("deployment.load.max_p99_ms: a load budget is measured with rows of a table; image_classification has none "
                          "(remove max_p99_ms)") for p in found)
