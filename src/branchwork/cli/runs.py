"""`branchwork runs list|show|graph|delete`."""

from __future__ import annotations

from typing import Annotated

import typer

from branchwork.cli import render
from branchwork.cli.render import OutputFormat
from branchwork.exceptions import ArtifactError

app = typer.Typer(no_args_is_help=True)

RunArgument = Annotated[
    str, typer.Argument(help="The run's name or id.", show_default=False, metavar="RUN")
]
OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
]


@app.command("list")
def list_runs(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Runs, newest first."""
    from branchwork.metadata.admin import list_runs, step_counts
    from branchwork.metadata.store import get_engine

    engine = get_engine()
    runs = list_runs(engine, pipeline, limit)
    counts = step_counts(engine, [run.id for run in runs])
    if output is OutputFormat.json:
        render.print_json([{**render.run_dict(r), "step_count": counts.get(r.id, 0)} for r in runs])
    elif runs:
        render.show_runs_table(runs, counts)
    else:
        typer.echo("No runs yet." if pipeline is None else f"No runs of pipeline {pipeline!r}.")


@app.command("show")
def show(run: RunArgument, output: OutputOption = OutputFormat.table) -> None:
    """A run's fields, parameters and every step run (one row per attempt)."""
    from branchwork.client import Client
    from branchwork.metadata.admin import step_run_origins
    from branchwork.metadata.store import get_engine

    record = Client().get_pipeline_run(run)
    origins = step_run_origins(
        get_engine(), [s.original_step_run_id for s in record.attempts if s.original_step_run_id]
    )
    if output is OutputFormat.json:
        names = render.invocation_names(record)
        steps = [render.step_dict(step, names, origins) for step in record.attempts]
        render.print_json({**render.run_dict(record), "steps": steps})
    else:
        render.show_run(record, origins)


@app.command("graph")
def graph(run: RunArgument) -> None:
    """The run's DAG as it ran; fan-outs of one step show as one line, `step ×N`."""
    from branchwork.cli.graph import graph_tree
    from branchwork.client import Client

    render.console().print(graph_tree(Client().get_pipeline_run(run)))


@app.command("delete")
def delete(
    run: RunArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    purge_artifacts: Annotated[
        bool,
        typer.Option(
            "--purge-artifacts",
            help="Also remove the files of the artifact versions deleted with the run.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even a run that is still marked running.")
    ] = False,
) -> None:
    """Delete a run's records. Artifact versions other runs use (e.g. through the cache) stay;
    artifact files stay unless --purge-artifacts."""
    from branchwork.client import Client
    from branchwork.metadata.admin import delete_run, purge_files
    from branchwork.metadata.store import get_engine

    record = Client().get_pipeline_run(run)
    if not yes:
        typer.confirm(f"Delete run '{record.name}' ({len(record.attempts)} step runs)?", abort=True)
    engine = get_engine()
    deleted = delete_run(engine, record.id, force=force)
    typer.echo(
        f"Deleted run '{deleted.run_name}': {deleted.step_runs} step runs, "
        f"{len(deleted.deleted_versions)} artifact versions."
    )
    if deleted.kept_versions:
        typer.echo(
            f"Kept {len(deleted.kept_versions)} artifact versions it produced that other runs use."
        )
    if purge_artifacts:
        removed, failed = purge_files(engine, deleted.deleted_versions)
        typer.echo(f"Removed {len(removed)} artifact folders.")
        if failed:
            uri, reason = failed[0]
            raise ArtifactError(
                f"Could not remove {len(failed)} artifact folders (first: {uri}: {reason})."
            )
    elif deleted.deleted_versions:
        typer.echo("Artifact files were left in place (--purge-artifacts removes them).")
