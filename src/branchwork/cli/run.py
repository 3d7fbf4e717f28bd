"""`branchwork run TARGET`: run a pipeline from a file or module with parameters from the
command line, on the active stack or `--stack NAME`, showing its progress while it runs
(see `cli.progress`), then print the run, its status and what the pipeline returned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from branchwork.cli.render import console, status_text, value_repr

if TYPE_CHECKING:
    from branchwork.pipelines.parameters import CommandLineValue


def split_pairs(pairs: list[str], option: str) -> dict[str, str]:
    """`key=value` pairs as they were typed, by key."""
    texts: dict[str, str] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE.", param_hint=option)
        if key in texts:
            raise typer.BadParameter(f"{key!r} is given twice.", param_hint=option)
        texts[key] = text
    return texts


def parse_params(pairs: list[str], option: str = "--param") -> dict[str, Any]:
    """`key=value` pairs; a value is JSON when it parses as JSON (3, true, [1, 2]), else text."""
    from branchwork.pipelines.parameters import json_or_text

    return {key: json_or_text(text) for key, text in split_pairs(pairs, option).items()}


def pipeline_params(pairs: list[str]) -> dict[str, CommandLineValue]:
    """`--param key=value` pairs for a pipeline: JSON when it parses, else text, unless the
    parameter's annotation says otherwise (see `pipelines.parameters`)."""
    from branchwork.pipelines.parameters import CommandLineValue

    return {key: CommandLineValue(text) for key, text in split_pairs(pairs, "--param").items()}


ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="KEY=VALUE",
        help=(
            "A pipeline parameter; repeatable. VALUE is parsed as JSON when it can be, then "
            "checked and converted by the parameter's type annotation."
        ),
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
) -> None:
    """Call `call()` (which runs a pipeline, or resumes a run) on `stack`, with progress,
    then print the run's name, status and the returned value, or, when the run paused at
    `branchwork.wait`, its question and how to answer it. Ctrl-C stops the run (see
    `runtime.interrupts`); the command then exits with 130 (143 after SIGTERM)."""
    from contextlib import nullcontext

    from branchwork.cli.progress import progress_mode, watch
    from branchwork.exceptions import RunPaused
    from branchwork.metadata.queries import get_run
    from branchwork.metadata.store import get_engine
    from branchwork.pipelines.last_runs import watching_runs
    from branchwork.runtime.interrupts import Terminated
    from branchwork.stack import active_stack
    from branchwork.stack.stacks import get_stack

    scope: Any = active_stack(get_stack(stack)) if stack else nullcontext()
    engine = get_engine()
    started: list[str] = []  # the run this command started, once it exists

    def locate() -> str | None:
        return started[0] if started else None

    result: Any = None
    interrupted: int | None = None  # the exit code it calls for
    paused: RunPaused | None = None
    watcher = watch(progress_mode(progress), locate, pipeline_name, engine)
    with scope, watching_runs(started.append), watcher:
        try:
            result = call()  # a failed run raises PipelineRunFailedError, naming the step
        except KeyboardInterrupt as interrupt:  # SIGTERM: 128 + 15, as its default action
            interrupted = 143 if isinstance(interrupt, Terminated) else 130
        except RunPaused as error:
            paused = error
    out = console()
    if started:
        record = get_run(engine, started[0], include_steps=False)
        out.print(Text.assemble(("Run:    ", "bold"), record.name))
        out.print(Text.assemble(("Status: ", "bold"), status_text(record.status)))
    if interrupted is not None:
        raise typer.Exit(interrupted)
    if paused is not None:
        name = record.name if started else paused.run_id
        if paused.refused:
            out.print(Text.assemble(("Refused: ", "bold"), paused.refused))
        out.print(Text.assemble(("Waiting: ", "bold"), paused.question))
        out.print(Text(f"Answer with `branchwork runs answer {name} --value VALUE`."))
        if paused.refused:  # the answer given was not taken
            raise typer.Exit(1)
        return
    out.print(Text.assemble(("Result: ", "bold"), value_repr(result)))


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
    refresh: Annotated[
        bool,
        typer.Option("--refresh", help="Recompute every step; the results replace cached ones."),
    ] = False,
    refresh_step: Annotated[
        list[str] | None,
        typer.Option(
            "--refresh-step",
            metavar="STEP",
            help="Recompute this step (repeatable); its results replace cached ones.",
            show_default=False,
        ),
    ] = None,
    stack: StackOption = None,
    progress: ProgressOption = True,
) -> None:
    """Run a pipeline and print its run name, status and return value."""
    from branchwork.cli.targets import load_target

    params = pipeline_params(param or [])
    pipeline = load_target(target)
    if config is not None:
        pipeline = pipeline.with_options(config_path=str(config))
    if no_cache:
        pipeline = pipeline.with_options(enable_cache=False)
    if refresh or refresh_step:
        pipeline = pipeline.with_options(refresh=True if refresh else refresh_step)
    run_and_report(lambda: pipeline(**params), pipeline.name, stack=stack, progress=progress)
