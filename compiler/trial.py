"""Shared by plan and the local engine: the trial script's command line, as Azure (and capc's sweep runner) runs it.

One rule for the words src/train.py is called with: its data input, the label column, the primary metric, one
`--NAME value` per hyperparameter (bound from the sweep's search space or from a component's inputs), and any
extra words. Values from a spec are shell-quoted: Azure runs the command through a shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def trial_command(
    metric: str, params: Iterable[str], bind_to: str, target: str | None = None, extra: Iterable[str] = (), script: str = "train.py"
) -> str:
    """`python train.py ...` with each hyperparameter bound to `${{<bind_to>.<name>}}` (search_space or inputs).

    `script`: a conditional sweep's per-family sweeps run train_<family>.py (names capc makes, never spec text)."""
    words = [f"python {script}", "--data ${{inputs.training_data}}"]
    if target is not None:
        words.append(f"--target {shlex.quote(target)}")
    words.append(f"--metric {shlex.quote(metric)}")
    words += [f"--{p} ${{{{{bind_to}.{p}}}}}" for p in params]
    return " ".join([*words, *extra])
