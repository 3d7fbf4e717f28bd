"""The root `branchwork` command: global options, error handling, and the command groups.

Errors are handled in one place, the root group's `invoke`, which every command runs inside:
an exception from a command prints `Error: <first line of its message>` to stderr and exits
1, unless `--debug` (or BRANCHWORK_DEBUG=1) asks for the traceback. Typer's own exceptions
(usage errors, exit 2; `Exit`; `Abort`) pass through to Typer untouched. Errors that are not
branchwork's own are prefixed with their type, since their message alone rarely says enough,
and point at `--debug`. A password in a store URL is masked, whoever wrote the message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from branchwork import __version__
from branchwork.cli import (
    artifacts,
    cache,
    dashboard,
    db,
    pipeline_graph,
    project,
    run,
    runs,
    stacks,
)
from branchwork.exceptions import BranchworkError

_DEBUG = "branchwork.debug"
_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)[^@\s/]*@")


def error_line(error: BaseException) -> str:
    """One line that says what went wrong, with any password in a URL replaced by ***."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    message = _URL_PASSWORD.sub(r"\1***@", lines[0].strip()) if lines else ""
    if isinstance(error, BranchworkError):
        return message or type(error).__name__
    name = type(error).__name__
    return f"{name}: {message}" if message else name


def _is_typer_control(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] == "typer"


class BranchworkGroup(TyperGroup):
    """The root group: turns any error into one line on stderr (see the module docstring)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if _is_typer_control(error) or ctx.meta.get(_DEBUG):
                raise
            hint = "" if isinstance(error, BranchworkError) else " (--debug shows the traceback)"
            typer.echo(f"Error: {error_line(error)}{hint}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=BranchworkGroup,
    name="branchwork",
    help="branchwork: dynamic ML and data pipelines in plain Python.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"branchwork {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="BRANCHWORK_DEBUG", help="Show tracebacks instead of one line."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    ctx.meta[_DEBUG] = debug


app.command("init")(project.init)
app.command("run")(run.run)
app.command("graph")(pipeline_graph.graph)
app.command("dashboard")(dashboard.dashboard)
app.add_typer(runs.app, name="runs", help="List, inspect, draw and delete pipeline runs.")
app.add_typer(artifacts.app, name="artifacts", help="List, inspect and load artifact versions.")
app.add_typer(cache.app, name="cache", help="Control the cache: invalidate a step's results.")
app.add_typer(db.app, name="db", help="The metadata store's location and schema.")
app.add_typer(stacks.stack_app, name="stack", help="Register, list, describe and activate stacks.")
app.add_typer(stacks.orchestrator_app, name="orchestrator", help="Register and list orchestrators.")
app.add_typer(
    stacks.artifact_store_app, name="artifact-store", help="Register and list artifact stores."
)
