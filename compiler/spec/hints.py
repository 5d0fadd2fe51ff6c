"""Did-you-mean hints shared by every check that rejects a name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    choices = list(choices)
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if str(word).lower() in lowered:
            close = [lowered[str(word).lower()]]
    if close:
        return f"did you mean `{close[0]}`?"
    if len(choices) <= 16:  # a list that still reads in one line (the spec's 13 top-level keys)
        return "expected one of: " + ", ".join(f"`{c}`" for c in choices)
    return None
