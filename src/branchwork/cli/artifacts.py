"""`branchwork artifacts list|show|load`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from branchwork.cli import render
from branchwork.cli.render import OutputFormat
from branchwork.models.shapes import version_dict

app = typer.Typer(no_args_is_help=True, help="List, inspect and load artifact versions.")

ArtifactArgument = Annotated[
    str,
    typer.Argument(
        help="An artifact name (its latest version), NAME:VERSION, an artifact version id, or "
        "the address RUN/INVOCATION\\[/OUTPUT] of a step's output (RUN: a name or id, a unique "
        "prefix of either, latest, or latest:PIPELINE; OUTPUT only when the step has several).",
        show_default=False,
        metavar="ARTIFACT",
    ),
]
OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
]


@app.command("list")
def list_artifacts(
    name_argument: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]", help="List this artifact's versions (as --name).", show_default=False
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="List this artifact's versions.", show_default=False),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Only versions with this tag.", show_default=False)
    ] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(help="Only versions made by runs of this pipeline.", show_default=False),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            help="Only versions whose logged metadata has KEY equal to VALUE (read as JSON "
            "when it parses, else as a string); repeat for several keys.",
            metavar="KEY=VALUE",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Artifact names with their version counts and latest version, or, given a name or a
    filter, the matching versions, newest first."""
    from branchwork.cli.run import parse_params
    from branchwork.metadata.artifact_listing import (
        find_artifact_version,
        list_artifact_versions,
        list_artifacts,
    )
    from branchwork.metadata.run_listing import step_run_origins
    from branchwork.metadata.store import get_engine

    name = _one_name(name_argument, name)
    wanted = parse_params(metadata or [], "--metadata")
    engine = get_engine()
    if name is None and tag is None and pipeline is None and not wanted:
        artifacts = list_artifacts(engine)
        if output is OutputFormat.json:
            render.print_json([render.artifact_dict(summary) for summary in artifacts])
        elif artifacts:
            render.show_artifacts_table(artifacts)
        else:
            typer.echo("No artifacts yet.")
        return
    versions = list_artifact_versions(engine, name, tag, pipeline, wanted)
    if not versions and name is not None:
        find_artifact_version(engine, name)  # says so if there is no such artifact
    if output is OutputFormat.json:
        render.print_json([version_dict(version) for version in versions])
    elif versions:
        producers = [v.producer_step_run_id for v in versions if v.producer_step_run_id]
        render.show_versions_table(
            versions, step_run_origins(engine, producers), with_names=name is None
        )
    else:
        typer.echo("No artifact versions match.")


def _one_name(argument: str | None, option: str | None) -> str | None:
    if argument is not None and option is not None and argument != option:
        raise typer.BadParameter(f"two names given ({argument!r} and --name {option!r}).")
    return argument if argument is not None else option


@app.command("show")
def show(artifact: ArtifactArgument, output: OutputOption = OutputFormat.table) -> None:
    """An artifact version: its number, tags, logged metadata and preview, where it is
    stored, its type, which run made it and which use it."""
    from branchwork.metadata.artifact_listing import runs_using_version
    from branchwork.metadata.run_listing import step_run_origins
    from branchwork.metadata.run_refs import find_artifact
    from branchwork.metadata.store import get_engine

    engine = get_engine()
    version = find_artifact(engine, artifact)
    used_by = runs_using_version(engine, version.id)
    origins = step_run_origins(engine, [version.producer_step_run_id or ""])
    if output is OutputFormat.json:
        origin = origins.get(version.producer_step_run_id or "")
        render.print_json(
            {
                **version_dict(version),
                "producer_run": origin.run_name if origin else None,
                "producer_invocation": origin.invocation_id if origin else None,
                "used_by_runs": used_by,
            }
        )
    else:
        render.show_version(version, origins, used_by)


@app.command("load")
def load(
    artifact: ArtifactArgument,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Unpickle it if it is stored as a pickle: only if you trust whoever can "
            "write to the artifact store (unpickling runs code from it).",
        ),
    ] = False,
) -> None:
    """Load an artifact version with its materializer and print its repr."""
    from branchwork.metadata.run_refs import find_artifact
    from branchwork.metadata.store import get_engine
    from branchwork.stack.components import remember_registered_stores

    engine = get_engine()
    remember_registered_stores(engine)  # an S3 store's endpoint and credentials
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the project's classes import, as under `python -m`
    typer.echo(render.value_repr(find_artifact(engine, artifact).load(allow_pickle=allow_pickle)))
