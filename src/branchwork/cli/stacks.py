"""`branchwork stack ...`, `branchwork orchestrator ...`, `branchwork artifact-store ...`:
the stack registry in the metadata store (`branchwork.stack.stacks`, `.components`)."""

from __future__ import annotations

from typing import Annotated

import typer

from branchwork.cli import render
from branchwork.cli.render import OutputFormat
from branchwork.cli.run import parse_params

stack_app = typer.Typer(
    no_args_is_help=True, help="Register, list, describe, set and delete stacks."
)
orchestrator_app = typer.Typer(no_args_is_help=True, help="Register and list orchestrators.")
artifact_store_app = typer.Typer(no_args_is_help=True, help="Register and list artifact stores.")

OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
]
NameArgument = Annotated[str, typer.Argument(help="Its name.", show_default=False, metavar="NAME")]


# ---- stacks --------------------------------------------------------------------------------


@stack_app.command("register")
def register_stack(
    name: NameArgument,
    orchestrator: Annotated[
        str,
        typer.Option(
            "--orchestrator", help="A registered orchestrator's name.", show_default=False
        ),
    ],
    artifact_store: Annotated[
        str, typer.Option("--artifact-store", "-a", help="A registered artifact store's name.")
    ] = "default",
    set_active: Annotated[
        bool, typer.Option("--set", help="Also make it the active stack.")
    ] = False,
) -> None:
    """Register a stack: an orchestrator and an artifact store."""
    from branchwork.stack import stacks

    record = stacks.register_stack(name, orchestrator, artifact_store)
    typer.echo(
        f"Registered stack '{record.name}': orchestrator '{record.orchestrator.name}' "
        f"({record.orchestrator.flavor}), artifact store '{record.artifact_store.name}' "
        f"({record.artifact_store.location})."
    )
    if set_active:
        stacks.set_active_stack(name)
        typer.echo(f"Active stack: {name}")


@stack_app.command("list")
def list_stacks(output: OutputOption = OutputFormat.table) -> None:
    """Every stack; the active one is starred."""
    from branchwork.stack import stacks

    records = stacks.list_stacks()
    if output is OutputFormat.json:
        render.print_json([render.stack_dict(stack) for stack in records])
    else:
        render.show_stacks_table(records)


@stack_app.command("set")
def set_stack(name: NameArgument) -> None:
    """Make a stack the active one: runs use it unless told otherwise (`run --stack`)."""
    from branchwork.stack import stacks

    stacks.set_active_stack(name)
    typer.echo(f"Active stack: {name}")


@stack_app.command("describe")
def describe_stack(
    name: Annotated[
        str | None,
        typer.Argument(help="A stack's name (default: the active one).", show_default=False),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """A stack's orchestrator and artifact store with their settings."""
    from branchwork.stack import stacks

    record = stacks.describe_stack(name)
    if output is OutputFormat.json:
        render.print_json(render.stack_dict(record))
    else:
        render.show_stack(record)


@stack_app.command("delete")
def delete_stack(name: NameArgument) -> None:
    """Delete a stack (its components stay registered)."""
    from branchwork.stack import stacks

    stacks.delete_stack(name)
    typer.echo(f"Deleted stack '{name}'.")


# ---- components ----------------------------------------------------------------------------


def _list_components(kind: str, output: OutputFormat) -> None:
    from branchwork.stack import components

    records = components.list_components(kind)
    if output is OutputFormat.json:
        render.print_json([render.component_dict(component) for component in records])
    else:
        render.show_components_table(records)


@orchestrator_app.command("register")
def register_orchestrator(
    name: NameArgument,
    flavor: Annotated[
        str,
        typer.Option(
            "--flavor", "-f", help="local, local_process or an entry point's.", show_default=False
        ),
    ],
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            metavar="KEY=VALUE",
            help="A setting of the flavor; repeatable. VALUE is parsed as JSON when it can be.",
        ),
    ] = None,
) -> None:
    """Register an orchestrator; its settings are checked by building it."""
    from branchwork.stack import components

    settings = parse_params(config or [], "--config")
    record = components.register_orchestrator(name, flavor, settings)
    shown = ", ".join(f"{key}={value!r}" for key, value in record.config.items())
    typer.echo(
        f"Registered orchestrator '{record.name}' (flavor {record.flavor})"
        + (f" with {shown}." if shown else ".")
    )


@orchestrator_app.command("list")
def list_orchestrators(output: OutputOption = OutputFormat.table) -> None:
    """Registered orchestrators (and the built-in default)."""
    _list_components("orchestrator", output)


@orchestrator_app.command("flavors")
def flavors() -> None:
    """The orchestrator flavors that can be registered."""
    from branchwork.orchestrators.flavors import available_flavors

    for flavor, path in sorted(available_flavors().items()):
        typer.echo(f"{flavor:<16} {path}")


@orchestrator_app.command("delete")
def delete_orchestrator(name: NameArgument) -> None:
    """Delete an orchestrator that no stack uses."""
    from branchwork.stack import components

    components.delete_component("orchestrator", name)
    typer.echo(f"Deleted orchestrator '{name}'.")


@artifact_store_app.command("register")
def register_artifact_store(
    name: NameArgument,
    path: Annotated[  # a str: a Path would make `s3://b/x` the folder `s3:/b/x` unnoticed
        str | None,
        typer.Option("--path", help="A local folder (flavor local).", show_default=False),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="An fsspec URL: s3://..., gs://... (flavor fsspec).", show_default=False
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3: the server's URL (not AWS).", show_default=False)
    ] = None,
    region: Annotated[str | None, typer.Option(help="S3: the region.", show_default=False)] = None,
    access_key_id: Annotated[
        str | None, typer.Option(help="S3: the access key id.", show_default=False)
    ] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(
            help="S3: the environment variable that holds the secret key where steps run.",
            show_default=False,
        ),
    ] = None,
    secret_file: Annotated[
        str | None,
        typer.Option(help="S3: a file that holds the secret key.", show_default=False),
    ] = None,
) -> None:
    """Register an artifact store: a local folder (--path) or an fsspec URL (--url). The
    secret of an S3 store is never stored: name where it is (--secret-env or --secret-file)."""
    from branchwork.stack import components

    if (path is None) == (url is None):
        raise typer.BadParameter("give exactly one of --path or --url.")
    record = components.register_artifact_store(
        name,
        path=path,
        url=url,
        endpoint_url=endpoint_url,
        region=region,
        access_key_id=access_key_id,
        secret_env=secret_env,
        secret_file=secret_file,
    )
    typer.echo(f"Registered artifact store '{record.name}' ({record.flavor}) at {record.location}.")


@artifact_store_app.command("list")
def list_artifact_stores(output: OutputOption = OutputFormat.table) -> None:
    """Registered artifact stores (and the built-in default)."""
    _list_components("artifact_store", output)


@artifact_store_app.command("delete")
def delete_artifact_store(name: NameArgument) -> None:
    """Delete an artifact store that no stack uses (its files stay)."""
    from branchwork.stack import components

    components.delete_component("artifact_store", name)
    typer.echo(f"Deleted artifact store '{name}'.")
