"""`branchwork artifacts list|show|load`."""

from __future__ import annotations

from typing import Annotated

import typer

from branchwork.cli import render
from branchwork.cli.render import OutputFormat

app = typer.Typer(no_args_is_help=True)

ArtifactArgument = Annotated[
    str,
    typer.Argument(
        help="An artifact version id, or the address RUN/INVOCATION[/OUTPUT] of a step's output "
        "(RUN: a name or id, a unique prefix of either, latest, or latest:PIPELINE; OUTPUT only "
        "when the step has several).",
        show_default=False,
        metavar="ARTIFACT",
    ),
]
OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
]


@app.command("list")
def list_artifacts(
    name: Annotated[
        str | None,
        typer.Argument(help="List this artifact's versions instead.", show_default=False),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Artifact names with their version counts, or the versions of artifact NAME."""
    from branchwork.metadata.artifact_listing import list_artifact_versions, list_artifacts
    from branchwork.metadata.run_listing import step_run_origins
    from branchwork.metadata.store import get_engine

    engine = get_engine()
    if name is None:
        artifacts = list_artifacts(engine)
        if output is OutputFormat.json:
            render.print_json([render.artifact_dict(summary) for summary in artifacts])
        elif artifacts:
            render.show_artifacts_table(artifacts)
        else:
            typer.echo("No artifacts yet.")
        return
    versions = list_artifact_versions(engine, name)
    if output is OutputFormat.json:
        render.print_json([render.version_dict(version) for version in versions])
    else:
        producers = [v.producer_step_run_id for v in versions if v.producer_step_run_id]
        render.show_versions_table(versions, step_run_origins(engine, producers))


@app.command("show")
def show(artifact: ArtifactArgument, output: OutputOption = OutputFormat.table) -> None:
    """An artifact version: where it is stored, its type, which run made it and which use it."""
    from branchwork.metadata.artifact_listing import get_artifact_version, runs_using_version
    from branchwork.metadata.run_listing import step_run_origins
    from branchwork.metadata.run_refs import resolve_artifact
    from branchwork.metadata.store import get_engine

    engine = get_engine()
    version = get_artifact_version(engine, resolve_artifact(engine, artifact))
    used_by = runs_using_version(engine, version.id)
    origins = step_run_origins(engine, [version.producer_step_run_id or ""])
    if output is OutputFormat.json:
        origin = origins.get(version.producer_step_run_id or "")
        render.print_json(
            {
                **render.version_dict(version),
                "producer_run": origin.run_name if origin else None,
                "producer_invocation": origin.invocation_id if origin else None,
                "used_by_runs": used_by,
            }
        )
    else:
        render.show_version(version, origins, used_by)


@app.command("load")
def load(artifact: ArtifactArgument) -> None:
    """Load an artifact version with its materializer and print its repr."""
    from branchwork.metadata.artifact_listing import get_artifact_version
    from branchwork.metadata.run_refs import resolve_artifact
    from branchwork.metadata.store import get_engine

    engine = get_engine()
    typer.echo(repr(get_artifact_version(engine, resolve_artifact(engine, artifact)).load()))
