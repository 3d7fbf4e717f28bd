"""`branchwork run TARGET`: run a pipeline from a file or module with parameters from the
command line, then print the run, its status and what the pipeline returned."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from branchwork.cli.render import console, status_text


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; a value is JSON when it parses as JSON (3, true, [1, 2]), else text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE.", param_hint="--param")
        if key in params:
            raise typer.BadParameter(f"{key!r} is given twice.", param_hint="--param")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


def run(
    target: Annotated[
        str,
        typer.Argument(
            help="path/to/file.py:pipeline_name or package.module:pipeline_name.",
            metavar="TARGET",
            show_default=False,
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="A pipeline parameter; repeatable. VALUE is parsed as JSON when it can be.",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step, ignoring cached results.")
    ] = False,
) -> None:
    """Run a pipeline and print its run name, status and return value."""
    from branchwork.cli.targets import load_target
    from branchwork.metadata.admin import list_runs
    from branchwork.metadata.store import get_engine

    params = parse_params(param or [])
    pipeline = load_target(target)
    if no_cache:
        pipeline = pipeline.with_options(enable_cache=False)
    result = pipeline(**params)  # a failed run raises PipelineRunFailedError, naming the step
    latest = list_runs(get_engine(), pipeline.name, limit=1)
    out = console()
    if latest:
        out.print(Text.assemble(("Run:    ", "bold"), latest[0].name))
        out.print(Text.assemble(("Status: ", "bold"), status_text(latest[0].status)))
    out.print(Text.assemble(("Result: ", "bold"), repr(result)))
