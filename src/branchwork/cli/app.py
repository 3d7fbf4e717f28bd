"""The root `branchwork` command: global options, error handling, and the command groups.

Errors are handled in one place, the root group's `invoke`, which every command runs inside:
an exception from a command prints `Error: <first line of its message>` to stderr and exits
1, unless `--debug` (or BRANCHWORK_DEBUG=1) asks for the traceback. Typer's own exceptions
(usage errors, exit 2; `Exit`; `Abort`) pass through to Typer untouched. Errors that are not
branchwork's own are prefixed with their type, since their message alone rarely says enough,
and point at `--debug`. A password in a store URL is masked, whoever wrote the message. A
command whose output goes to a reader that stopped reading (`| head -1`) exits 1 quietly.

Each command's module is imported only when that command runs (or help lists it): a command
pays for its own imports, not every other command's.
"""

from __future__ import annotations

import importlib
import os
import re
import select
import sys
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from branchwork import __version__
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


# Command name: (module, attribute), a command function or a Typer group with its help.
SUBCOMMANDS = {
    "init": ("branchwork.cli.project", "init"),
    "run": ("branchwork.cli.run", "run"),
    "graph": ("branchwork.cli.pipeline_graph", "graph"),
    "dashboard": ("branchwork.cli.dashboard", "dashboard"),
    "runs": ("branchwork.cli.runs", "app"),
    "artifacts": ("branchwork.cli.artifacts", "app"),
    "cache": ("branchwork.cli.cache", "app"),
    "db": ("branchwork.cli.db", "app"),
    "stack": ("branchwork.cli.stacks", "stack_app"),
    "orchestrator": ("branchwork.cli.stacks", "orchestrator_app"),
    "artifact-store": ("branchwork.cli.stacks", "artifact_store_app"),
}


def load_subcommand(name: str) -> Any:
    """The click command of `SUBCOMMANDS[name]`, its module imported now."""
    module, attribute = SUBCOMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer()
    single.command(name)(target)
    return typer.main.get_command(single)


class LazyCommands(MutableMapping[str, Any]):
    """The root's commands by name: every name of `SUBCOMMANDS` is listed (help, "did you
    mean"), and each command is loaded when first looked up."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in SUBCOMMANDS:
                raise KeyError(name)
            self._loaded[name] = load_subcommand(name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"the command {name!r} cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(SUBCOMMANDS), **self._loaded})

    def __len__(self) -> int:
        return len({*SUBCOMMANDS, *self._loaded})


class BranchworkGroup(TyperGroup):
    """The root group: its commands are loaded when asked for, and any error becomes one
    line on stderr (see the module docstring)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands()

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # their names, without loading them

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if _is_typer_control(error) or ctx.meta.get(_DEBUG):
                raise
            if not (isinstance(error, BrokenPipeError) and _stdout_closed()):
                hint = (
                    "" if isinstance(error, BranchworkError) else " (--debug shows the traceback)"
                )
                typer.echo(f"Error: {error_line(error)}{hint}", err=True)
            # else `branchwork runs list | head -1`: what read the output has all it wanted
            raise typer.Exit(1) from None


def _stdout_closed() -> bool:
    """Whether what reads our output has gone (a pipe into `head`): polling the pipe then
    reports an error. Stdout is then pointed at the null device, so the interpreter's last
    flush does not complain."""
    try:
        stdout = sys.stdout.fileno()
        poller = select.poll()
        poller.register(stdout, select.POLLOUT)
        gone = any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return False
    if gone:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stdout)
        os.close(null)
    return gone


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
