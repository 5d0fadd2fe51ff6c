"""The README must not drift: its spec reference from the schema, its commands and its Layout from the tree."""

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


def test_readme_layout_names_paths_that_exist():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    paths = re.findall(r"^\| (.+?) \|", section, re.M)
    named = [p for cell in paths for p in re.findall(r"`([^`$<]+)`", cell)]
    assert len(named) > 10, "README's Layout table lost its paths"
    missing = [p for p in named if not (REPO / p).exists()]
    assert not missing, f"README's Layout names paths that do not exist: {missing}"
