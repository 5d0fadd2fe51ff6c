"""The trial families as documentation: the `capc families` command and README's family table, both from
capc.families.

One table holds each family's hyperparameters with their domains and defaults; this module only lays it out, so
what `capc families` prints, what README says (a test compares them) and what validation checks cannot drift.
The command lives here (capc.cli lists it among its commands), so cli.py stays within its size.
"""

from __future__ import annotations

import click

from capc.cli_options import json_option
from capc.errors import CapcError
from capc.families import FAMILIES, TrialFamily
from capc.spec.hints import did_you_mean


def selected(name: str | None) -> list[TrialFamily]:
    if name is None:
        return list(FAMILIES.values())
    if name not in FAMILIES:
        hint = did_you_mean(name, FAMILIES) or f"built-in families: {', '.join(FAMILIES)}"
        raise CapcError(f"no trial family `{name}` ({hint})")
    return [FAMILIES[name]]


def as_dict(family: TrialFamily) -> dict:
    """A family as `capc families --json` gives it."""
    return {
        "family": family.name,
        "tasks": list(family.tasks),
        "reports": family.reports,
        "reports_text": family.reports_text,
        "early_termination_can_act": family.reports != "once",
        "extra": family.needs_extra,
        "hyperparameters": [
            {"name": h.name, "kind": h.kind, "domain": h.domain, "default": h.default, "help": h.help,
             "low": h.low, "high": h.high, "open_low": h.open_low, "open_high": h.open_high, "allowed": list(h.allowed) or None}
            for h in family.hyperparameters
        ],
    }


def default_text(value) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def markdown_table() -> str:
    """README's table: one row per hyperparameter, the family's tasks and reports on its first row."""
    lines = ["| family | tasks | metric reported | hyperparameter | domain | default | meaning |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for family in FAMILIES.values():
        for i, h in enumerate(family.hyperparameters):
            head = (f"`{family.name}`" + (f" (`capc[{family.needs_extra}]`)" if family.needs_extra else ""),
                    ", ".join(family.tasks), family.reports_text) if i == 0 else ("", "", "")
            cells = (*head, f"`{h.name}`", h.domain.replace("|", "\\|"), f"`{default_text(h.default)}`", h.help.replace("|", "\\|"))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@click.command("families")
@click.argument("name", required=False)
@click.option("--markdown", is_flag=True, help="Print README's family table instead.")
@json_option
def families_command(name: str | None, markdown: bool, as_json: bool) -> None:
    """The built-in trial families: tasks, how often a trial reports its metric, hyperparameters with domains and defaults."""
    from capc import views

    if markdown:
        click.echo(markdown_table(), nl=False)
        return
    families = [as_dict(f) for f in selected(name)]
    if as_json:
        views.print_json(families if name is None else families[0])
        return
    for family in families:
        views.console().print(views.family_table(family))
