"""Domain errors: every failure a user can cause is a value the CLI turns into exit code 1, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass


class CapcError(Exception):
    """A problem the user can fix; `message` is one paragraph, `hint` says what to do."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


@dataclass(frozen=True, order=True)
class SpecProblem:
    """One problem in a spec, located at FILE:LINE:COL and a dotted key path."""

    file: str
    line: int
    column: int
    key_path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class SpecInvalid(CapcError):
    """A spec with one or more problems; carries all of them so they are reported in one run."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = sorted(set(problems))  # one mistake can trip several rules the same way; say it once
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__("\n".join(str(p) for p in self.problems) + f"\n{len(self.problems)} {noun} found.")
