"""The submit's live display: what it prints when no terminal is attached (CI logs, `capc submit ... 2> log`)."""

import io

from rich.console import Console

from capc.local.progress import SubmitProgress


def test_a_note_is_printed_verbatim_on_one_line():
    # Notes carry candidate names and parameter values; brackets in them are text, and a log line stays whole.
    out = io.StringIO()
    progress = SubmitProgress("accuracy", "maximize", console=Console(file=out, width=40))
    text = "serving cost of automl [bold]Vote-4 weights=[0.5, 0.4]: p99 1.0 ms, 88,796 rows/s in a 1,000-row request"
    progress.note(text)
    assert out.getvalue() == text + "\n"
