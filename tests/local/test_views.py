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
