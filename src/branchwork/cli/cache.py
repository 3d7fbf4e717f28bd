"""`branchwork cache invalidate`: stop serving a step's cached results."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Control the cache: invalidate a step's results.")


@app.command("invalidate")
def invalidate(
    step: Annotated[
        str, typer.Argument(help="The step's name.", metavar="STEP", show_default=False)
    ],
    pipeline: Annotated[
        str | None,
        typer.Option(
            "--pipeline",
            help="Only its results in runs of this pipeline, and every other result of "
            "their cache keys (another pipeline's, which then computes them anew too).",
        ),
    ] = None,
) -> None:
    """Make a step compute anew on its next run: its cached results are no longer served
    (they stay in the store, with the runs that made them)."""
    from branchwork.client import Client

    count = Client().invalidate_cache(step, pipeline)
    where = f" in pipeline '{pipeline}'" if pipeline else ""
    if count:
        noun = "result" if count == 1 else "results"
        typer.echo(f"Invalidated {count} cached {noun} of step '{step}'{where}.")
    else:
        typer.echo(f"Step '{step}'{where} has no cached results to invalidate.")
