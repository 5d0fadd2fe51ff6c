"""Commands as Azure ML runs them (capc.local.commands): the command text to `bash -c` with bindings quoted for the
shell, `python SCRIPT` / `python -m MODULE` kept as the fork-able argv, `distribution` as one process with the rank
variables of a single node; and hand-written command jobs whose commands use the shell, run for real."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from capc.errors import CapcError
from capc.jobfolder.job_yaml import load_job_yaml
from capc.local import commands
from capc.local.handwritten import run_job_yaml

VALUES = {"inputs": {"data": "/tmp/my data/train.csv", "lr": "0.01"}, "outputs": {"model": "/tmp/out"}}


@pytest.mark.parametrize(
    ("command", "argv_tail"),
    [
        ("python train.py --data ${{inputs.data}} --lr ${{inputs.lr}}", ["train.py", "--data", "/tmp/my data/train.csv", "--lr", "0.01"]),
        ("python -m pkg.train --out ${{outputs.model}}", ["-m", "pkg.train", "--out", "/tmp/out"]),
        ("python3.11 'train.py' --name \"a b\"", ["train.py", "--name", "a b"]),
    ],
)
def test_a_plain_python_command_keeps_the_fork_able_argv(command, argv_tail):
    prepared = commands.prepare_command(command, VALUES)
    assert not prepared.shell
    assert prepared.argv == [sys.executable, *argv_tail]


@pytest.mark.parametrize(
    "command",
    [
        "pip install pygit2; python hello-git.py",
        "python a.py && sleep 600",
        "source /usr/venv/bin/activate && Rscript run.R",
        "python a.py | tee log.txt",
        "python a.py --seed $SEED",
        "python a.py \\\n  --x 1",
        "python a.py\npython b.py",
        "cd src && python a.py",
        "python -c 'print(1)'",
    ],
)
def test_shell_syntax_goes_to_bash(command):
    prepared = commands.prepare_command(command, VALUES)
    assert prepared.shell and prepared.argv[1:] == ["-c", command]
    assert Path(prepared.argv[0]).name in ("bash", "sh")


def test_pip_install_in_capcs_interpreter_is_named_in_a_note():
    prepared = commands.prepare_command("pip install pygit2; python hello-git.py", VALUES)
    assert prepared.shell and any("installs packages with pip" in n for n in prepared.notes)
    assert not commands.prepare_command("pip install pygit2", VALUES, python="/envs/x/bin/python").notes


def test_bindings_are_quoted_for_where_they_stand():
    """bash itself reads the bound text: a value stays one word, unexpanded, bare, in double or in single quotes."""
    import subprocess

    awkward = "/x/it's $HOME; `ls` a\\b \"q\""
    text = commands.bind_command(
        "printf '%s\\n' ${{inputs.v}} \"run ${{inputs.v}}\" '${{inputs.v}}'; echo ${{outputs.model}}",
        {"inputs": {"v": awkward}, "outputs": {"model": "/plain"}},
    )
    lines = subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines == [awkward, f"run {awkward}", awkward, "/plain"]


def test_optional_segments_are_kept_only_with_their_values():
    command = "python a.py $[[--lr ${{inputs.lr}}]] $[[--extra ${{inputs.extra}}]]"
    assert commands.bind_command(command, {"inputs": {"lr": "0.1"}}).split() == ["python", "a.py", "--lr", "0.1"]


def test_a_binding_without_a_value_is_a_capc_error():
    with pytest.raises(CapcError, match=r"\$\{\{inputs.nope\}\}"):
        commands.prepare_command("python a.py ${{inputs.nope}}", VALUES)


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        ({"type": "pytorch", "process_count_per_instance": 4}, {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1"}),
        ({"type": "mpi", "process_count_per_instance": 2}, {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "1", "AZ_BATCHAI_MPI_MASTER_NODE": "127.0.0.1", "RANK": "0"}),
        ({"type": "tensorflow", "worker_count": 2}, {"WORLD_SIZE": "1"}),
    ],
)
def test_distribution_runs_as_rank_zero_of_one(distribution, expected):
    prepared = commands.prepare_command("python train.py", VALUES, distribution=distribution)
    assert expected.items() <= prepared.env.items()
    assert 0 < int(prepared.env["MASTER_PORT"]) < 65536
    assert len(prepared.notes) == 1 and "one process, rank 0 of 1" in prepared.notes[0]
    if distribution["type"] == "tensorflow":
        assert json.loads(prepared.env["TF_CONFIG"])["task"] == {"type": "worker", "index": 0}


def test_environment_variables_and_the_environments_python_lead(tmp_path):
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python"
    python.symlink_to(sys.executable)
    (venv_bin / "python3").symlink_to(python)
    prepared = commands.prepare_command("python a.py", VALUES, python=str(python), environment_variables={"N": 3, "FLAG": True})
    assert prepared.argv[0] == str(python)  # not capc's interpreter: spawned, not forked
    assert prepared.env["PATH"].split(":")[0] == str(venv_bin)
    assert (prepared.env["N"], prepared.env["FLAG"]) == ("3", "True")


# ---------------------------------------------------------------- command jobs whose commands use the shell


SHOW_ARGS = """
import json, os, sys
os.makedirs("outputs", exist_ok=True)
with open("outputs/args.json", "w") as handle:
    json.dump({"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in ("GREETING", "RANK", "WORLD_SIZE", "MASTER_ADDR", "LOCAL_RANK")}}, handle)
"""


@pytest.fixture
def shell_job(workdir: Path) -> Path:
    """A command job in Azure's documented shape (commandJob.schema.json; a literal block `command: |`)."""
    (workdir / "src").mkdir()
    (workdir / "src" / "show_args.py").write_text(SHOW_ARGS)
    (workdir / "data").mkdir()
    (workdir / "data" / "rows.txt").write_text("b\nc\na\n")
    job = workdir / "shell_job.yml"
    job.write_text(textwrap.dedent("""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        type: command
        code: ./src
        command: |
          echo first > outputs/steps.txt; echo second >> outputs/steps.txt
          python show_args.py --rows ${{inputs.rows}} --note ${{inputs.note}} && echo after-and >> outputs/steps.txt
          sort ${{inputs.rows}} | head -n 2 > outputs/sorted.txt
          echo "$GREETING" > outputs/greeting.txt
        inputs:
          rows:
            type: uri_file
            path: ./data/rows.txt
          note: two words
        environment_variables:
          GREETING: hello from the job
        distribution:
          type: pytorch
          process_count_per_instance: 2
        environment: azureml:AzureML-sklearn-1.5@latest
        compute: azureml:cpu-cluster
        """))
    return job


@pytest.mark.slow
def test_a_command_job_runs_its_command_as_bash_would(shell_job: Path):
    notes: list[str] = []
    result = run_job_yaml(load_job_yaml(shell_job), say=notes.append)
    assert result.status == "completed"
    outputs = Path(result.files.folder) / "outputs"
    assert (outputs / "steps.txt").read_text().split() == ["first", "second", "after-and"]  # `;`, `&&`, multi-line
    assert (outputs / "sorted.txt").read_text().split() == ["a", "b"]  # a pipe
    assert (outputs / "greeting.txt").read_text().strip() == "hello from the job"  # $VAR from environment_variables
    shown = json.loads((outputs / "args.json").read_text())
    assert shown["argv"] == ["--rows", str(shell_job.parent / "data" / "rows.txt"), "--note", "two words"]  # no `&&` passed on
    assert shown["env"] == {"GREETING": "hello from the job", "RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "LOCAL_RANK": "0"}
    assert any("rank 0 of 1" in n for n in notes), notes


def test_a_yaml_command_job_without_type_is_a_command_job(workdir: Path):
    from click.testing import CliRunner

    from capc.cli import cli

    job = workdir / "job.yaml"
    job.write_text("command: echo ran > outputs/ran.txt && echo $WHO >> outputs/ran.txt\nenvironment: azureml:AzureML-sklearn-1.5@latest\n"
                   "environment_variables:\n  WHO: untyped\n")
    validated = CliRunner().invoke(cli, ["validate", str(job)])
    assert validated.exit_code == 0 and "ok (Azure ML command job)" in validated.output, validated.output
    submitted = CliRunner().invoke(cli, ["submit", str(job), "--json"])
    assert submitted.exit_code == 0, submitted.output
    payload = json.loads(submitted.stdout[submitted.stdout.index("{"):])
    assert payload["type"] == "command" and payload["status"] == "completed"
    assert (Path(payload["best"]["folder"]) / "outputs" / "ran.txt").read_text().split() == ["ran", "untyped"]
    assert any("is not built locally" in n for n in payload["notes"]), payload["notes"]


@pytest.mark.slow
def test_resume_of_a_completed_command_job_runs_nothing(workdir: Path):
    job = workdir / "once.yml"
    job.write_text("type: command\ncommand: echo x >> outputs/count.txt\n")
    first = run_job_yaml(load_job_yaml(job))
    notes: list[str] = []
    again = run_job_yaml(load_job_yaml(job), resume=True, say=notes.append)
    assert again.submit_run_id == first.submit_run_id and again.status == "completed"
    assert (Path(again.files.folder) / "outputs" / "count.txt").read_text() == "x\n"
    assert any("--resume" in n and "nothing runs again" in n for n in notes)
    changed = run_job_yaml(load_job_yaml(job, ["command=echo y >> outputs/count.txt"]), resume=True)  # --set: another version
    assert changed.submit_run_id != first.submit_run_id
    assert (Path(changed.files.folder) / "outputs" / "count.txt").read_text() == "y\n"


def test_sweep_trials_start_through_the_same_function(tmp_path):
    """A sweep trial's command: the environment's python, shell syntax to bash, the trial's distribution."""
    from capc.local.sweep_plan import plan_sweep, trial_process

    job = {"type": "sweep", "objective": {"primary_metric": "acc", "goal": "maximize"}, "sampling_algorithm": "grid",
           "search_space": {"lr": {"type": "choice", "values": [0.1]}},
           "trial": {"command": "python train.py --lr ${{search_space.lr}}", "environment_variables": {"A": "1"},
                     "distribution": {"type": "pytorch", "process_count_per_instance": 2}}}
    plan = plan_sweep(job, tmp_path, python="/envs/abc/bin/python")
    prepared = trial_process(plan, {"lr": 0.1})
    assert prepared.argv == ["/envs/abc/bin/python", "train.py", "--lr", "0.1"]
    assert prepared.env["A"] == "1" and prepared.env["WORLD_SIZE"] == "1"
    job["trial"]["command"] = "python train.py --lr ${{search_space.lr}} && echo done"
    assert trial_process(plan_sweep(job, tmp_path), {"lr": 0.1}).argv[1:] == ["-c", "python train.py --lr 0.1 && echo done"]


def test_an_optional_input_without_a_value_drops_its_segment(tmp_path):
    from capc.local.command_job import _bound_inputs

    job_file = tmp_path / "job.yml"
    job_file.write_text(
        "type: command\ncommand: python a.py --n ${{inputs.n}} $[[--lr ${{inputs.lr}}]]\n"
        "inputs:\n  n: 3\n  lr:\n    type: number\n    optional: true\nenvironment: azureml:env@latest\n"
    )
    inputs, _ = _bound_inputs(load_job_yaml(job_file), load_job_yaml(job_file).data["command"])
    assert inputs == {"n": "3"}
    assert commands.prepare_command(load_job_yaml(job_file).data["command"], {"inputs": inputs}).argv[1:] == ["a.py", "--n", "3"]
    assert commands.optional_only("a $[[--x ${{inputs.x}}]] ${{inputs.y}} $[[${{inputs.y}}]]") == {("inputs", "x")}
