"""The README's spec reference is generated from the schema; it must not drift from it."""

import re

from capc.spec.reference import markdown
from repo import REPO


def test_readme_spec_reference_matches_schema():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- spec-reference:start -->\n(.*)<!-- spec-reference:end -->", readme, re.S)
    assert block, "README.md lost its spec-reference markers"
    assert block.group(1) == markdown(), "README spec reference is stale: paste `capc schema --markdown` between the markers"


def test_readme_commands_exist():
    from click.testing import CliRunner

    from capc.cli import cli

    readme = (REPO / "README.md").read_text()
    for command in sorted(set(re.findall(r"`capc ([a-z]+)", readme))):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0, f"README mentions `capc {command}` but it is not a command: {result.output}"
