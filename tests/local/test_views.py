"""What the CLI prints: values from specs, trial scripts and file names are shown as they are (rich markup is
only capc's own)."""

from rich.console import Console

from capc import views
from capc.state.tracking import RunRow


def _rendered(renderable) -> str:
    out = Console(width=400, record=True, file=open("/dev/null", "w"))
    out.print(renderable)
    return out.export_text()


def test_brackets_in_names_parameters_and_metrics_are_text_not_markup():
    rows = [
        RunRow("a" * 32, "trial_[0]", "trial", "completed", None, 0.0, 1.5,
               params={"kernel": "[rbf]", "family": "svc"}, metrics={"accuracy": 0.9, "loss[bold]": 0.1}),
    ]
    runs = _rendered(views.runs_table(rows, "runs"))
    board = _rendered(views.leaderboard_table(rows, "accuracy", "maximize", "board"))
    for text in (runs, board):
        assert "trial_[0]" in text and "kernel=[rbf]" in text
    assert "loss[bold]=0.1000" in runs
    assert "completed" in board  # capc's own markup (the status colour) still works: no tag shows
    assert "[green]" not in board


def test_the_submit_result_names_the_pass_over_and_the_winners_load(capsys, tmp_path):
    from types import SimpleNamespace

    from capc import serving_load
    from capc.local.outcome import Outcome
    from capc.selection import Selection
    from capc.serving_cost import Budget

    ensemble = Outcome("automl", "r1", 0.9147, tmp_path, label="StackEnsemble-12")
    lightgbm = Outcome("automl", "r2", 0.9142, tmp_path, label="LightGBM-0")
    figure = serving_load.LoadFigure(508.0, 5.0, 11.0, 1000, 0, 2.0, 4, 2, 2, [0, 1], measure_s=4.4)
    selection = Selection(lightgbm, None, Budget(15), [(ensemble, ["121 requests/s < 300 at concurrency 4"])], [],
                          lambda o: {"source": o.source, "label": o.label, "value": o.value}, load=figure)
    selection.with_load(serving_load.LoadBudget(300, 25, 4), serving_load.instance_estimate(508, 2, "Standard_DS3_v2", 4, 4))
    model = SimpleNamespace(ref="bank:1", source="automl", value=0.9142)
    result = SimpleNamespace(name="bank", searches=[], metric="accuracy", goal="maximize", outcomes=[ensemble, lightgbm], winner=lightgbm,
                             model=model, selection=selection)
    views.print_submit(result)
    out = " ".join(capsys.readouterr().out.split())
    assert "passed over: 121 requests/s < 300 at concurrency 4" in out
    assert "under load (>= 300 requests/s and p99 <= 25 ms at concurrency 4): 508 requests/s, p99 11.0 ms" in out
    assert "azmlinfsrv, 2 workers on 2 cores, 4 keep-alive clients, 1000 one-row requests in 2.0 s (measured in 4.4 s)" in out
    assert "expected on Standard_DS3_v2: ~1,016 requests/s per instance (estimate, scaled by cores 4/2)" in out
    assert selection.to_dict()["passed_over"] == [{"source": "automl", "label": "StackEnsemble-12", "value": 0.9147,
                                                   "reasons": ["121 requests/s < 300 at concurrency 4"]}]
