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


def test_readme_family_table_matches_the_family_table():
    from capc.family_reference import markdown_table as families

    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- families:start -->\n(.*)<!-- families:end -->", readme, re.S)
    assert block, "README.md lost its families markers"
    assert block.group(1) == families(), "README family table is stale: paste `capc families --markdown` between the markers"


def test_capc_families_prints_the_same_data(tmp_path):
    import json

    from click.testing import CliRunner

    from capc.cli import cli
    from capc.families import FAMILIES

    listed = json.loads(CliRunner().invoke(cli, ["families", "--json"]).stdout)
    assert [f["family"] for f in listed] == list(FAMILIES)
    one = json.loads(CliRunner().invoke(cli, ["families", "svc", "--json"]).stdout)
    assert one["reports"] == "once" and not one["early_termination_can_act"]
    kernel = next(h for h in one["hyperparameters"] if h["name"] == "kernel")
    assert kernel["allowed"] == ["rbf", "poly", "sigmoid", "linear"] and kernel["default"] == "rbf"
    table = CliRunner().invoke(cli, ["families", "lightgbm"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "max_depth" in table.output and "integer >= -1" in table.output
    unknown = CliRunner().invoke(cli, ["families", "svm"])
    assert unknown.exit_code == 1 and "no trial family `svm` (did you mean `svc`?)" in unknown.output


OUTPUT_BLOCK = re.compile(r"<!-- output of: (capc [^\n]*?) -->\n```\n(.*?)```\n", re.S)


def _output_of(command: str) -> str:
    """What `command` prints (stdout, then stderr), run in the repository with an empty $CAPC_HOME; lines
    right-stripped (rich pads titles to the table's width)."""
    import shlex

    from click.testing import CliRunner

    from capc.cli import cli

    result = CliRunner().invoke(cli, shlex.split(command)[1:])
    text = result.stdout + result.stderr
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def test_readme_example_outputs_are_what_the_commands_print(workdir, monkeypatch):
    import os

    monkeypatch.chdir(REPO)  # the commands name specs/ relative to the repository; $CAPC_HOME stays private
    readme_path = REPO / "README.md"
    readme = readme_path.read_text()
    blocks = OUTPUT_BLOCK.findall(readme)
    assert len(blocks) >= 2, "README lost its example outputs"  # the plan, a refused distribution
    if os.environ.get("CAPC_UPDATE_README") == "1":
        updated = OUTPUT_BLOCK.sub(lambda m: f"<!-- output of: {m.group(1)} -->\n```\n{_output_of(m.group(1))}```\n", readme)
        readme_path.write_text(updated)
        return
    for command, shown in blocks:
        assert shown == _output_of(command), f"README's output of `{command}` is stale: rerun with CAPC_UPDATE_README=1"
