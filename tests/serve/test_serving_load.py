"""The load budget (capc.serving_load): candidates served by azmlinfsrv under concurrent clients, the bound on what
measuring costs, the estimate on the deployment's instance, and the winner explained wherever it is shown."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from capc import serving_cost, serving_load
from capc.serving_cost import Budget, Contender, NoCandidateFits, ServingCost
from capc.serving_load import InstanceEstimate, LoadBudget, LoadFigure, LoadSettings
from bank_models import save_locking_model
from serve_fixtures import DATA, bank_frame, generated_job_dir, save_model

HOLD_S = 0.5  # the locking model holds its lock this long per call: at most 2 requests/s, however many workers
# (4 workers queue at most 2 s on it, well within the bank deployment's 5 s scoring timeout)
# Between the two on a shared 2-core machine: the fast model serves hundreds of requests/s when quiet, and no fewer
# than 5 at a load average of 12-15 (the worst seen).
LOAD_BUDGET = LoadBudget(min_requests_per_s=3.5, concurrency=4)


def _figure(requests_per_s: float, p99_ms: float = 10.0, errors: int = 0, cores: int = 2) -> LoadFigure:
    return LoadFigure(requests_per_s=requests_per_s, p50_ms=p99_ms / 2, p99_ms=p99_ms, requests=500, errors=errors, seconds=2.0,
                      concurrency=4, workers=cores, cores=cores, cpus=list(range(cores)), measure_s=4.0,
                      first_error="HTTP 500: boom" if errors else None)


# ---------------------------------------------------------------------------------------------- the rule


def test_the_load_budget_says_why_a_figure_is_outside_it():
    budget = LoadBudget(min_requests_per_s=300, max_p99_ms=25, concurrency=4)
    assert budget.any and not LoadBudget().any
    assert budget.describe() == ">= 300 requests/s and p99 <= 25 ms at concurrency 4"
    assert budget.reasons(_figure(512, 11)) == []
    assert budget.reasons(_figure(121, 76)) == ["121 requests/s < 300 at concurrency 4", "p99 under load 76.0 ms > 25 ms at concurrency 4"]
    assert budget.reasons(_figure(512, 11, errors=3))[0].startswith("3 of 503 requests failed under load (HTTP 500: boom)")
    assert LoadFigure.from_record(_figure(512).record()) == _figure(512)
    assert set(_figure(512).metrics()) >= {"serving_load_requests_per_s", "serving_load_p99_ms", "serving_load_cores"}


def test_the_timed_part_stops_at_its_request_count_or_its_deadline():
    """What bounds one candidate's measurement: the timed requests stop at LOAD_REQUESTS answered or LOAD_SECONDS,
    and the whole (start, warm-up, timed part, stop) has a bound computed from its settings."""
    keep = serving_load.keep_sending
    assert keep(answered=0, started=100.0, now=100.0, load_requests=2000, load_seconds=2.0)
    assert keep(1999, 100.0, 101.9, 2000, 2.0)
    assert not keep(2000, 100.0, 100.5, 2000, 2.0)  # enough requests: a fast model stops early
    assert not keep(10, 100.0, 102.0, 2000, 2.0)  # the deadline: a slow model stops with what it answered
    settings = LoadSettings(concurrency=4, workers=1, cpus=(0, 1), load_seconds=2.0, ready_seconds=60.0)
    warm_up_rounds = 1  # 2 workers x WARM_UP_PER_WORKER requests over 4 clients
    assert serving_load.cost_bound_s(settings) == pytest.approx(
        60.0 + warm_up_rounds * serving_load.REQUEST_TIMEOUT_S + 2.0 + serving_load.REQUEST_TIMEOUT_S + 2 * serving_load.STOP_GRACE_S)
    assert serving_load.LOAD_SECONDS <= 3 and serving_load.LOAD_REQUESTS <= 5000  # a few seconds of requests, no more


def test_the_local_worker_count_is_capc_deploys():
    assert serving_load.local_worker_count(1, 2) == 2  # at least one per core
    assert serving_load.local_worker_count(4, 2) == 4  # deployment.yml's WORKER_COUNT when it asks more


def test_the_instance_estimate_scales_by_the_cores_it_serves_on():
    more = serving_load.instance_estimate(300, 2, "Standard_DS3_v2", 4, 4)
    assert more.requests_per_s == 600 and more.serving_cores == 4 and more.lower_bound
    assert "expected on Standard_DS3_v2: ~600 requests/s per instance (estimate, scaled by cores 4/2)" in more.lines()
    assert "the instance has more cores: a load budget met on this machine is a lower bound there" in more.lines()
    one_worker = serving_load.instance_estimate(300, 2, "Standard_DS3_v2", 4, 1)
    assert one_worker.requests_per_s == 150 and not one_worker.lower_bound
    assert any("raise deployment.max_concurrent_requests_per_instance to use its 4 vCPUs" in line for line in one_worker.lines())
    unknown = serving_load.instance_estimate(300, 2, "Standard_Made_Up", None, 4)
    assert unknown.requests_per_s is None and unknown.lines() == ["Standard_Made_Up: vCPUs unknown to capc, so no estimate for the instance"]
    assert InstanceEstimate(**{k: more.to_dict()[k] for k in InstanceEstimate.__dataclass_fields__}) == more


def _contenders(tmp_path, values: dict[str, float]) -> list[Contender]:
    out = []
    for name, value in values.items():
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "MLmodel").write_text("flavors: {}\n")
        out.append(Contender(name, value, str(tmp_path / name)))
    return out


def _cost(p99_ms: float) -> ServingCost:
    return ServingCost(load_s=0.1, size_mb=1.0, memory_mb=5.0, p50_ms=p99_ms / 2, p99_ms=p99_ms, rows_per_s=1e4, calls=50)


def test_fast_alone_but_slow_under_load_is_passed_over_and_the_load_is_measured_last(tmp_path):
    """The ensemble fits the one-call budget but not the load one; the forest is over the one-call budget, so it is
    never served under load; the LightGBM model fits both and wins; the logistic one is never measured."""
    p99 = {"ensemble": 9.0, "forest": 40.0, "lightgbm": 3.0, "logistic": 1.0}
    served = {"ensemble": 121.0, "lightgbm": 508.0}
    contenders = _contenders(tmp_path, {"ensemble": 0.9147, "forest": 0.9145, "lightgbm": 0.9142, "logistic": 0.90})
    budget, load_budget = Budget(max_latency_ms=15), LoadBudget(min_requests_per_s=300, concurrency=4)
    under_load = []

    def within_load(contender):
        under_load.append(contender.name)
        contender.load = _figure(served[contender.name])
        return load_budget.reasons(contender.load)

    choice = serving_cost.choose(contenders, "maximize", budget, lambda c: _cost(p99[c.name]), also_within=within_load)
    assert choice.chosen.name == "lightgbm" and under_load == ["ensemble", "lightgbm"]
    lines = choice.explanation()
    assert "passed over ensemble (0.9147): 121 requests/s < 300 at concurrency 4" in lines
    assert "passed over forest (0.9145): p99 latency 40.0 ms > 15 ms" in lines
    assert any(line.startswith("lightgbm under load: 508 requests/s, p99 10.0 ms") for line in lines)

    strict = LoadBudget(min_requests_per_s=1000)

    def within_strict(contender):
        contender.load = _figure(served.get(contender.name, 50.0))
        return strict.reasons(contender.load)

    with pytest.raises(NoCandidateFits, match=r"lightgbm \(0\.9142\) served the most under load: 508 requests/s < 1000 at concurrency 4"):
        serving_cost.choose(_contenders(tmp_path / "again", {n: c.value for n, c in zip(p99, contenders)}), "maximize", budget,
                            lambda c: _cost(p99[c.name]), also_within=within_strict)


# ---------------------------------------------------------------------------------------------- explained everywhere

RECORD = {
    "budget": "p99 latency <= 15 ms",
    "load_budget": ">= 300 requests/s and p99 <= 25 ms at concurrency 4",
    "serving": None,
    "load": _figure(508, 11).record(),
    "instance_estimate": serving_load.instance_estimate(508, 2, "Standard_DS3_v2", 4, 4).to_dict(),
    "passed_over": [{"source": "automl", "label": "StackEnsemble-12", "value": 0.9147, "reasons": ["121 requests/s < 300 at concurrency 4"]}],
}


def _registered(tmp_path, record: dict):
    from capc.state import registry

    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    return registry.register(model_dir, name="bank", task="classification", metric="accuracy", value=0.9142, goal="maximize",
                             source="automl", run_id="0" * 32, spec_sha256="0" * 64, job_dir=str(tmp_path), selection=record)


def test_models_show_names_each_pass_over_with_its_figure(workdir, tmp_path):
    from capc.cli import cli

    _registered(tmp_path, RECORD)
    shown = CliRunner().invoke(cli, ["models", "show", "bank"])
    assert shown.exit_code == 0, shown.output
    assert "chosen under: p99 latency <= 15 ms; >= 300 requests/s and p99 <= 25 ms at concurrency 4" in shown.output
    assert "passed over automl StackEnsemble-12 (0.9147): 121 requests/s < 300 at concurrency 4" in shown.output
    assert "508 requests/s, p99 11.0 ms (p50 5.5) at concurrency 4" in shown.output
    assert "expected on Standard_DS3_v2: ~1,016 requests/s per instance (estimate, scaled by cores 4/2)" in shown.output
    assert json.loads(CliRunner().invoke(cli, ["models", "show", "bank", "--json"]).stdout)["selection"] == RECORD


def test_the_reports_summary_names_each_pass_over(workdir, tmp_path):
    from capc.report.collect import ReportData
    from capc.report.page import render_page

    model = _registered(tmp_path, RECORD)
    data = ReportData(model, None, None, None, None, None, {}, [], [], [], [], [])
    page = render_page(data, [], None, [], "no runs").decode()
    summary = page[page.index('id="summary"'):page.index("</section>", page.index('id="summary"'))]
    assert "<dt>passed over</dt><dd>automl StackEnsemble-12 (0.9147): 121 requests/s &lt; 300 at concurrency 4</dd>" in summary
    assert "expected on Standard_DS3_v2: ~1,016 requests/s per instance (estimate" in summary

    # ranked third: one better run is the ensemble passed over, the other was never a candidate, and the page says so
    from capc.report.collect import BoardRow

    board = [BoardRow(rank, "automl", name, name, "completed", value, 1.0, {}, name == "LightGBM-0")
             for rank, name, value in ((1, "StackEnsemble-12", 0.9147), (2, "XGBoost-3", 0.9144), (3, "LightGBM-0", 0.9142))]
    data = ReportData(model, None, None, None, None, None, {}, board, [], [], [], [])
    page = render_page(data, [], None, [], "no runs").decode()
    assert "<dt>not candidates</dt><dd>1 better-ranked run on the boards below was not weighed" in page


# ---------------------------------------------------------------------------------------------- through azmlinfsrv


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The generated bankmarketing score.py, a fast model and the same model behind a lock all workers share."""
    root = tmp_path_factory.mktemp("serving_load")
    job = generated_job_dir(root / "generated")
    fast = save_model(root / "fast", pip_requirements=[])
    locking = save_locking_model(root / "locking", fast, HOLD_S)
    records = serving_cost.request_records(bank_frame(50).drop(columns="y"))
    return SimpleNamespace(job=job, fast=fast, locking=locking, records=records)


@pytest.mark.slow
def test_a_model_holding_a_lock_is_fast_enough_alone_and_rejected_under_load(served, tmp_path):
    """Local selection with a load budget, on real azmlinfsrv servers: the better model holds a lock on every call,
    fits the one-call budget, serves at most 1/HOLD_S requests/s under 4 clients, and is passed over with its figure;
    the winner carries how its figure was taken and the estimate on the instance."""
    from capc.local.outcome import Outcome
    from capc.local.winner import select

    locked = Outcome("automl", "run-locked", 0.95, served.locking, {}, {"accuracy": 0.95}, "StackEnsemble-7")
    fast = Outcome("sweep", "run-fast", 0.90, served.fast, {}, {"accuracy": 0.90}, "trial 1")
    deployment = {"model": "best", "max_latency_ms": 5000, "min_requests_per_s": LOAD_BUDGET.min_requests_per_s,
                  "load": {"concurrency": 4}, "instance_type": "Standard_DS3_v2"}
    selection = select([locked, fast], name="bank", deployment_model="best", goal="maximize", budget=Budget(max_latency_ms=5000),
                       job_dir=served.job, task="classification", deployment=deployment)
    result = selection.to_dict()
    assert selection.winner is fast, result
    (passed,) = result["passed_over"]
    assert passed["label"] == "StackEnsemble-7" and "requests/s < 3.5 at concurrency 4" in passed["reasons"][0]
    assert locked.metrics["serving_p99_ms"] <= 5000  # within the one-call budget: only the load rejects it
    assert locked.metrics["serving_load_requests_per_s"] <= 1 / HOLD_S * 1.2
    load = result["load"]
    assert load["concurrency"] == 4 and load["workers"] >= load["cores"] >= 1 and load["server"].startswith("azmlinfsrv")
    assert load["requests"] > 0 and load["measure_s"] < serving_load.cost_bound_s(LoadSettings(concurrency=4, workers=load["workers"]))
    assert result["instance_estimate"]["vcpus"] == 4 and result["instance_estimate"]["estimate"] is True
    assert any("expected on Standard_DS3_v2" in line for line in selection.explanation)


def _candidate_output(root: Path, model: Path, value: float) -> Path:
    import shutil

    shutil.copytree(model, root / "model")
    (root / "metrics.json").write_text(f'{{"metric": "accuracy", "value": {value}}}')
    return root


@pytest.mark.slow
def test_the_pipelines_select_step_applies_the_load_budget(served, tmp_path):
    """The generated select/select_best.py as the pipeline runs it, with the spec's load budget arguments."""
    import subprocess

    automl = _candidate_output(tmp_path / "automl", served.locking, 0.95)
    sweep = _candidate_output(tmp_path / "sweep", served.fast, 0.90)
    command = [
        sys.executable, "select/select_best.py", "--candidate", f"automl={automl}", "--candidate", f"sweep={sweep}",
        "--metric", "accuracy", "--goal", "maximize", "--model_name", "bank", "--score", "score.py",
        "--training_data", str(DATA), "--target", "y", "--max_latency_ms", "5000",
        "--min_requests_per_s", str(LOAD_BUDGET.min_requests_per_s), "--load_concurrency", "4",
        "--deployment_file", "deployment.yml", "--instance_type", "Standard_DS3_v2", "--instance_vcpus", "4",
        "--output", str(tmp_path / "winner"), "--no_register",
    ]
    done = subprocess.run(command, cwd=served.job, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    winner = json.loads((tmp_path / "winner" / "winner.json").read_text())
    assert winner["candidate"] == "sweep" and winner["load"]["requests_per_s"] >= LOAD_BUDGET.min_requests_per_s
    assert "requests/s < 3.5 at concurrency 4" in winner["passed_over"][0]["reasons"][0]
    assert winner["load_budget"] == ">= 3.5 requests/s at concurrency 4"
    assert winner["instance_estimate"]["instance_type"] == "Standard_DS3_v2" and winner["instance_estimate"]["workers"] == 4
    assert "serving_load_requests_per_s" in winner["measured"]["automl"]
    assert "passed over automl (0.95): " in done.stdout


@pytest.mark.slow
def test_a_server_that_cannot_start_is_a_load_error_saying_why(served, tmp_path):
    empty = tmp_path / "no-model"
    empty.mkdir()
    with pytest.raises(serving_load.LoadError, match=r"azmlinfsrv did not start: it exited with status \d+ before answering"):
        serving_load.measure_load(str(served.job / "score.py"), str(empty), served.records, LoadSettings(concurrency=2, ready_seconds=120))
