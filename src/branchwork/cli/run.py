"""`branchwork run TARGET`: run a pipeline from a file or module with parameters from the
command line, on the active stack or `--stack NAME`, showing its progress while it runs
(see `cli.progress`), then print the run, its status and what the pipeline returned."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from branchwork.cli.render import console, status_text


def parse_params(pairs: list[str], option: str = "--param") -> dict[str, Any]:
    """`key=value` pairs; a value is JSON when it parses as JSON (3, true, [1, 2]), else text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE.", param_hint=option)
        if key in params:
            raise typer.BadParameter(f"{key!r} is given twice.", param_hint=option)
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="KEY=VALUE",
        help="A pipeline parameter; repeatable. VALUE is parsed as JSON when it can be.",
    ),
]
StackOption = Annotated[
    str | None,
    typer.Option("--stack", "-s", help="Run on this registered stack instead of the active one."),
]
ProgressOption = Annotated[
    bool,
    typer.Option(
        "--progress/--no-progress",
        help="Show progress while it runs: live on a terminal, plain lines on stderr otherwise.",
    ),
]


def run_and_report(
    call: Callable[[], Any],
    pipeline_name: str,
    *,
    stack: str | None,
    progress: bool,
    run_id: str | None = None,
) -> None:
    """Call `call()` (which runs a pipeline, or resumes run `run_id`) on `stack`, with
    progress, then print the run's name, status and the returned value."""
    from contextlib import nullcontext

    from branchwork.cli.progress import RunLocator, progress_mode, watch
    from branchwork.metadata.queries import get_run
    from branchwork.metadata.store import get_engine
    from branchwork.stack import active_stack
    from branchwork.stack.registry import get_stack

    scope: Any = active_stack(get_stack(stack)) if stack else nullcontext()
    engine = get_engine()
    locate = RunLocator(engine, pipeline_name, run_id)
    with scope, watch(progress_mode(progress), locate, pipeline_name, engine):
        result = call()  # a failed run raises PipelineRunFailedError, naming the step
    found = locate()
    out = console()
    if found is not None:
        record = get_run(engine, found, include_steps=False)
        out.print(Text.assemble(("Run:    ", "bold"), record.name))
        out.print(Text.assemble(("Status: ", "bold"), status_text(record.status)))
    out.print(Text.assemble(("Result: ", "bold"), repr(result)))


def run(
    target: Annotated[
        str,
        typer.Argument(
            help="path/to/file.py:pipeline_name or package.module:pipeline_name.",
            metavar="TARGET",
            show_default=False,
        ),
    ],
    param: ParamOption = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="A YAML run configuration: parameters, pipeline and per-step settings.",
            show_default=False,
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step, ignoring cached results.")
    ] = False,
    stack: StackOption = None,
    progress: ProgressOption = True,
) -> None:
    """Run a pipeline and print its run name, status and return value."""
    from branchwork.cli.targets import load_target

    params = parse_params(param or [])
    pipeline = load_target(target)
    if config is not None:
        pipeline = pipeline.with_options(config_path=str(config))
    if no_cache:
        pipeline = pipeline.with_options(enable_cache=False)
    run_and_report(lambda: pipeline(**params), pipeline.name, stack=stack, progress=progress)
