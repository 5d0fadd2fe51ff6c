"""The command line's shared parts: the group that turns every CapcError into exit code 1 with one paragraph,
the decorator that makes a long command stop cleanly on a signal, and the options several commands take.
capc.cli holds the commands themselves.
"""

from __future__ import annotations

import errno
import functools
from pathlib import Path

import click

from capc import stopping
from capc.backends import DEFAULT_OUT
from capc.errors import CapcError, SpecInvalid


class CapcGroup(click.Group):
    """Turns domain errors into exit code 1 with a clear message, in one place."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SpecInvalid as exc:
            click.echo(exc.message, err=True)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            ctx.exit(1)
        except CapcError as exc:
            click.echo(f"error: {exc}", err=True)
            if ctx.obj and ctx.obj.get("debug"):
                raise
            ctx.exit(1)
        except KeyboardInterrupt as exc:
            click.echo(f"interrupted ({stopping.signal_name()})", err=True)
            ctx.exit(stopping.exit_status_of(exc))
        except OSError as exc:
            if stopping.stop_signal() is None or exc.errno not in (errno.EIO, errno.EPIPE):
                raise
            ctx.exit(stopping.exit_status())  # stopped, and the terminal is gone too (SIGHUP): nobody to tell


def stops_cleanly(command):
    """For long commands: SIGTERM and SIGHUP stop them as Ctrl-C does (capc.stopping). Innermost decorator."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        with stopping.stopping_on_signals():
            return command(*args, **kwargs)

    return run


spec_files = click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
out_option = click.option("--out", "out_dir", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True, help="Folder that holds <name>/ per spec.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
strict_option = click.option("--strict", is_flag=True, help="Treat warnings (Azure's service rules, limits that can never bind) as errors.")
target_option = click.option("--target", type=click.Choice(["local", "azure"]), default="local", show_default=True, help="Local endpoint or Azure managed online endpoint.")
workspace_option = click.option("--workspace", "workspace_config", type=click.Path(path_type=Path), default=None, help="Azure ML config.json (else AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME).")
data_map_option = click.option("--data-map", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE", help="Job YAML: a YAML of remote URI -> local path; binds every input, at any depth, that names a mapped URI.")
register_option = click.option("--register", "register_as", metavar="NAME", default=None, help="An AutoML job YAML: register its best model as NAME, with a scoring script (for deploy, predict, report).")
env_option = click.option("--env", "env_mode", type=click.Choice(["job", "current"]), default="job", show_default=True, help="Job YAML: job builds the environment its conda file asks for (cached under $CAPC_HOME/envs); current runs in capc's interpreter.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress display or progress lines while it runs (the result still prints).")
