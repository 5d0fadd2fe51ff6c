"""The compile commands of the CLI: validate, schema, build, diff (exit codes, messages, atomic writes, goldens)."""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from capc import __version__
from capc.artifacts import read_tree, write_tree
from capc.cli import cli
from capc.errors import CapcError, SpecInvalid
from capc.spec import load_spec, schema

from repo import REFERENCE_SPECS, REPO
from repo import write_spec as write

GOLDEN = REPO / "generated"


SPEC = """\
name: bank-demo
description: Small bank sample for the CLI tests.
dataset:
  path: data/bank.csv
  format: csv
  target: y
task: classification
metric: accuracy
automl:
  timeout_minutes: 5
sweep:
  model: lightgbm
  sampling: random
  search_space:
    learning_rate: uniform(0.01, 0.2)
    num_leaves: choice(15, 31)
  early_termination:
    type: bandit
    slack_factor: 0.1
"""

BAD_SPEC = """\
name: bank-demo
dataset:
  path: data/bank.csv
  format: csv
  target: yy
task: classification
metric: acuracy
"""


def run(runner: CliRunner, *args: object):
    return runner.invoke(cli, [str(a) for a in args])


# ---------------------------------------------------------------- validate


def test_validate_ok(runner: CliRunner, workdir: Path) -> None:
    path = write(workdir, SPEC)
    result = run(runner, "validate", path)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: ok (bank-demo, classification, accuracy)\n"


def test_validate_reference_specs(runner: CliRunner) -> None:
    result = run(runner, "validate", *REFERENCE_SPECS)
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok (") == len(REFERENCE_SPECS)


def test_validate_bad_spec_exits_1_without_traceback(runner: CliRunner, workdir: Path) -> None:
    path = write(workdir, BAD_SPEC)
    result = run(runner, "validate", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"{path}:5:11: dataset.target: column `yy` is not in bank.csv (did you mean `y`?)\n"
        f"{path}:7:9: metric: `acuracy` is not a primary metric for classification (did you mean `accuracy`?)\n"
        "2 problems found.\n"
    )
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_validate_reports_every_file(runner: CliRunner, workdir: Path) -> None:
    bad = write(workdir, BAD_SPEC)
    empty = write(workdir, "", name="empty.yaml")
    good = write(workdir, SPEC, name="good.yaml")
    result = run(runner, "validate", good, bad, empty)
    assert result.exit_code == 1
    assert f"{empty}:1:1: the spec is empty" in result.stderr
    assert f"{bad}:5:11: dataset.target" in result.stderr
    assert result.stderr.endswith("3 problems found.\n")


def test_validate_missing_spec_file(runner: CliRunner, tmp_path: Path) -> None:
    result = run(runner, "validate", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'nope.yaml'}:1:1: spec file not found (check the path)\n1 problem found.\n"


def test_debug_shows_the_exception(runner: CliRunner, workdir: Path) -> None:
    result = run(runner, "--debug", "validate", write(workdir, BAD_SPEC))
    assert result.exit_code == 1
    assert isinstance(result.exception, SpecInvalid)


def test_validate_in_a_real_process(workdir: Path) -> None:
    capc = shutil.which("capc")
    command = [capc] if capc else [sys.executable, "-m", "capc"]
    good = write(workdir, SPEC)
    ok = subprocess.run([*command, "validate", str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"{good}: ok (bank-demo, classification, accuracy)\n"
    bad = write(workdir, BAD_SPEC, name="bad.yaml")
    failed = subprocess.run([*command, "validate", str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stdout + failed.stderr
    assert failed.stderr.splitlines()[0] == f"{bad}:5:11: dataset.target: column `yy` is not in bank.csv (did you mean `y`?)"


# ---------------------------------------------------------------- schema


def test_schema_prints_a_valid_draft_2020_12_schema(runner: CliRunner) -> None:
    result = run(runner, "schema")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == schema()
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(printed)  # raises SchemaError when it is not a valid 2020-12 schema


@pytest.mark.parametrize("path", REFERENCE_SPECS, ids=lambda p: p.stem)
def test_printed_schema_accepts_the_reference_specs(runner: CliRunner, path: Path) -> None:
    # What an editor sees through yaml-language-server: the schema alone, no capc code.
    printed = json.loads(run(runner, "schema").stdout)
    errors = list(Draft202012Validator(printed).iter_errors(yaml.safe_load(path.read_text())))
    assert not errors, [e.message for e in errors]


def test_schema_markdown_reference(runner: CliRunner) -> None:
    result = run(runner, "schema", "--markdown")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "| key | type | default | meaning |"
    assert "| `automl.timeout_minutes` | integer | `60` | Whole-experiment time budget. |" in lines
    assert any(line.startswith("| `name` | string | required |") for line in lines)


# ---------------------------------------------------------------- build and diff


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_build_writes_folder_and_manifest(runner: CliRunner, workdir: Path) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    result = run(runner, "build", path, "--out", out)
    assert result.exit_code == 0, result.output
    target = out / "bank-demo"
    tree = read_tree(target)
    assert result.stdout == f"{target}: {len(tree)} files, {len(tree)} added, 0 changed, 0 removed\n"
    manifest = manifest_of(target)
    assert manifest["name"] == "bank-demo"
    assert manifest["capc_version"] == __version__
    assert manifest["spec_sha256"] == load_spec(path).sha256
    assert set(manifest["artifacts"]) == set(tree) - {"manifest.json"}
    for rel, digest in manifest["artifacts"].items():
        assert hashlib.sha256(tree[rel]).hexdigest() == digest, rel
    for expected in ("automl_job.yml", "sweep_job.yml", "data/MLTable", "src/train.py", "score.py"):
        assert expected in tree
    # No absolute path of this machine leaks into an artifact.
    assert not [rel for rel, content in tree.items() if str(workdir).encode() in content]
    # Nothing but the build folder is left behind (no staging folders).
    assert sorted(p.name for p in out.iterdir()) == ["bank-demo"]


def test_second_build_is_up_to_date(runner: CliRunner, workdir: Path) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    assert run(runner, "build", path, "--out", out).exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in (out / "bank-demo").rglob("*")}
    result = run(runner, "build", path, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(" files, up to date\n")
    assert {p: p.stat().st_mtime_ns for p in (out / "bank-demo").rglob("*")} == before  # not rewritten


def test_build_of_a_bad_spec_writes_nothing(runner: CliRunner, workdir: Path) -> None:
    out = workdir / "out"
    result = run(runner, "build", write(workdir, BAD_SPEC), "--out", out)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert not out.exists()


def test_diff_is_clean_after_build(runner: CliRunner, workdir: Path) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    assert run(runner, "build", path, "--out", out).exit_code == 0
    result = run(runner, "diff", "--exit-code", path, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out / 'bank-demo'}: no changes\n"


def test_diff_before_any_build(runner: CliRunner, workdir: Path) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    result = run(runner, "diff", "--exit-code", "--stat", path, "--out", out)
    assert result.exit_code == 1
    assert "  + manifest.json\n" in result.stdout
    assert "  + automl_job.yml\n" in result.stdout
    assert not out.exists()  # diff never writes


def test_diff_shows_an_edited_file(runner: CliRunner, workdir: Path) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    assert run(runner, "build", path, "--out", out).exit_code == 0
    job = out / "bank-demo" / "automl_job.yml"
    built = job.read_text()
    job.write_text(built + "# edited by hand\n")
    result = run(runner, "diff", "--exit-code", path, "--out", out)
    assert result.exit_code == 1
    label = (out / "bank-demo").as_posix()
    assert result.stdout.startswith(f"{out / 'bank-demo'}: 0 added, 1 changed, 0 removed\n  ~ automl_job.yml\n")
    assert f"--- a/{label}/automl_job.yml\n+++ b/{label}/automl_job.yml\n" in result.stdout
    assert "\n-# edited by hand\n" in result.stdout
    assert job.read_text() == built + "# edited by hand\n"  # diff left the edit alone
    # Without --exit-code a difference is not a failure.
    assert run(runner, "diff", path, "--out", out).exit_code == 0
    # --stat: the summary only.
    stat = run(runner, "diff", "--stat", path, "--out", out)
    assert "  ~ automl_job.yml\n" in stat.stdout and "+++ " not in stat.stdout
    # A build puts it back.
    rebuilt = run(runner, "build", path, "--out", out)
    assert rebuilt.stdout.endswith("0 added, 1 changed, 0 removed\n")
    assert job.read_text() == built


def test_diff_shows_a_removed_file(runner: CliRunner, workdir: Path) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    assert run(runner, "build", path, "--out", out).exit_code == 0
    (out / "bank-demo" / "score.py").unlink()
    result = run(runner, "diff", "--exit-code", path, "--out", out)
    assert result.exit_code == 1
    assert "  + score.py\n" in result.stdout  # the build would add it back
    assert f"--- /dev/null\n+++ b/{(out / 'bank-demo').as_posix()}/score.py\n" in result.stdout


def test_diff_shows_an_extra_file(runner: CliRunner, workdir: Path) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    assert run(runner, "build", path, "--out", out).exit_code == 0
    (out / "bank-demo" / "notes.txt").write_text("mine\n")
    result = run(runner, "diff", "--exit-code", path, "--out", out)
    assert result.exit_code == 1
    assert "  - notes.txt\n" in result.stdout  # the build would remove it
    assert f"--- a/{(out / 'bank-demo').as_posix()}/notes.txt\n+++ /dev/null\n" in result.stdout
    assert run(runner, "build", path, "--out", out).exit_code == 0
    assert not (out / "bank-demo" / "notes.txt").exists()


def test_spec_change_shows_in_diff(runner: CliRunner, workdir: Path) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    assert run(runner, "build", path, "--out", out).exit_code == 0
    path.write_text(SPEC.replace("timeout_minutes: 5", "timeout_minutes: 7"))
    result = run(runner, "diff", "--exit-code", "--stat", path, "--out", out)
    assert result.exit_code == 1
    assert "  ~ automl_job.yml\n" in result.stdout
    assert "  ~ manifest.json\n" in result.stdout  # the spec hash changed


def test_interrupted_build_leaves_the_old_folder_whole(runner: CliRunner, workdir: Path, monkeypatch) -> None:
    path, out = write(workdir, SPEC), workdir / "out"
    assert run(runner, "build", path, "--out", out).exit_code == 0
    old = read_tree(out / "bank-demo")
    path.write_text(SPEC.replace("timeout_minutes: 5", "timeout_minutes: 7"))

    real_write_bytes = pathlib.Path.write_bytes
    calls = []

    def failing_write_bytes(self, data):
        calls.append(self)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", failing_write_bytes)
    result = run(runner, "build", path, "--out", out)
    monkeypatch.undo()
    assert len(calls) == 3  # it did fail midway
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot write {out / 'bank-demo'}: No space left on device. the previous build, if any, is left as it was\n"
    assert "Traceback" not in result.output
    assert read_tree(out / "bank-demo") == old
    assert sorted(p.name for p in out.iterdir()) == ["bank-demo"]  # the half-written staging folder is gone


def test_failed_swap_puts_the_old_folder_back(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out" / "demo"
    write_tree(target, {"a.txt": b"old\n", "sub/b.txt": b"old b\n"})
    import capc.artifacts as artifacts

    real_rename = artifacts.os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # retiring the old folder worked; swapping the new one in fails
            raise OSError(13, "Permission denied")
        return real_rename(src, dst)

    monkeypatch.setattr(artifacts.os, "rename", rename)
    with pytest.raises(CapcError) as caught:
        write_tree(target, {"a.txt": b"new\n"})
    monkeypatch.undo()
    assert caught.value.message == f"cannot write {target}: Permission denied."
    assert read_tree(target) == {"a.txt": b"old\n", "sub/b.txt": b"old b\n"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["demo"]


def test_write_tree_replaces_exactly(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    write_tree(target, {"a.txt": b"1", "sub/b.txt": b"2"})
    write_tree(target, {"a.txt": b"3"})
    assert read_tree(target) == {"a.txt": b"3"}


def test_build_is_deterministic(runner: CliRunner, workdir: Path) -> None:
    path = write(workdir, SPEC)
    # Sibling folders at the same depth: the relative data paths inside the artifacts are the same.
    assert run(runner, "build", path, "--out", workdir / "one").exit_code == 0
    assert run(runner, "build", path, "--out", workdir / "two").exit_code == 0
    first, second = read_tree(workdir / "one" / "bank-demo"), read_tree(workdir / "two" / "bank-demo")
    assert first and first == second


def test_reference_specs_build_deterministically(runner: CliRunner, tmp_path: Path) -> None:
    specs = reference_checkout(tmp_path)
    for out in ("one", "two"):
        result = run(runner, "build", *sorted(specs.glob("*.yaml")), "--out", tmp_path / out)
        assert result.exit_code == 0, result.output
    for spec in REFERENCE_SPECS:
        assert read_tree(tmp_path / "one" / spec.stem) == read_tree(tmp_path / "two" / spec.stem), spec.stem


def reference_checkout(tmp_path: Path) -> Path:
    """tmp_path/specs pointing at the repo's specs, so tmp_path/generated sits where generated/ sits."""
    specs = tmp_path / "specs"
    specs.symlink_to(REPO / "specs", target_is_directory=True)
    return specs


def golden_names() -> list[str]:
    return sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) if GOLDEN.is_dir() else []


def test_golden_files(runner: CliRunner, tmp_path: Path) -> None:
    specs = reference_checkout(tmp_path)
    result = run(runner, "build", *sorted(specs.glob("*.yaml")), "--out", tmp_path / "generated")
    assert result.exit_code == 0, result.output
    assert golden_names() == sorted(p.stem for p in REFERENCE_SPECS)
    for name in golden_names():
        built, golden = read_tree(tmp_path / "generated" / name), read_tree(GOLDEN / name)
        differing = sorted(rel for rel in set(built) | set(golden) if built.get(rel) != golden.get(rel))
        assert not differing, f"generated/{name} is out of date in {differing}; review `capc diff specs/{name}.yaml`"
