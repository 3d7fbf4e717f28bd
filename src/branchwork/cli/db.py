"""`branchwork db status|upgrade|migrate-to`: where the metadata store is, its schema
revision, and copying it into another store (a team's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from branchwork.artifact_stores.base import BaseArtifactStore
    from branchwork.metadata.store_copy import CopyPlan, TableCopy

app = typer.Typer(no_args_is_help=True, help="The metadata store's location and schema.")


@app.command("status")
def status() -> None:
    """The store's URL (password hidden) and its schema revision against the newest one."""
    from branchwork.metadata.store_admin import store_status

    found = store_status()
    typer.echo(f"Store:    {found.url}")
    if not found.exists:
        typer.echo(f"Revision: none (no store yet; head is {found.head})")
        typer.echo("It is created on first use, or now by `branchwork db upgrade`.")
        return
    if found.up_to_date:
        state = "up to date"
    elif found.newer:
        state = "newer than this branchwork knows; upgrade branchwork"
    else:
        state = "behind; run `branchwork db upgrade`"
    typer.echo(f"Revision: {found.revision or 'none'} (head: {found.head}, {state})")


@app.command("upgrade")
def upgrade() -> None:
    """Migrate the store to the newest schema (creating it if needed)."""
    from branchwork.config.home import store_url
    from branchwork.metadata.store_admin import display_url, upgrade_store

    before, after = upgrade_store()
    where = display_url(store_url())
    if before == after:
        typer.echo(f"{where} is already at revision {after}.")
    else:
        typer.echo(f"Upgraded {where} from revision {before or 'none'} to {after}.")


@app.command("migrate-to")
def migrate_to(
    url: Annotated[
        str,
        typer.Argument(help="The store to copy into, e.g. postgresql+psycopg://user@host/db."),
    ],
    artifacts_to: Annotated[
        str | None,
        typer.Option(
            "--artifacts-to",
            help="Also copy the local artifact files there (a folder, or an fsspec URL such "
            "as s3://bucket/prefix) and point the copied records at the copies.",
        ),
    ] = None,
) -> None:
    """Copy the configured store (runs, step runs, artifact records, stacks, logs) into
    another one, e.g. a team's PostgreSQL, upgrading its schema first. Rows already there
    are skipped, or updated where they changed since (a run resumed, a step finished): run it
    again to finish an interrupted copy, or to bring the copy up to date."""
    from branchwork.config.home import store_url
    from branchwork.metadata.store_admin import head_revision
    from branchwork.metadata.store_copy import copy_rows, prepare_copy

    plan = prepare_copy(store_url(), url)
    files = _artifact_files_target(plan, artifacts_to) if artifacts_to is not None else None
    typer.echo(f"Copying {plan.source} into {plan.target}.")
    if plan.target_revision_before != head_revision():
        before = plan.target_revision_before or "none"
        typer.echo(f"Upgraded {plan.target} from revision {before} to {head_revision()}.")
    try:
        tables = copy_rows(plan, _print_table)
        copied = sum(table.copied for table in tables)
        there = sum(table.already_there for table in tables)
        updated = sum(table.updated for table in tables)
        since = f"; {updated} of them updated, changed since" if updated else ""
        if copied or updated:
            typer.echo(
                f"Copied {copied} rows into {plan.target} ({there} were already there{since})."
            )
        else:
            typer.echo(f"Nothing to copy: all {there} rows are already in {plan.target}.")
        if files is not None:
            _copy_artifacts(plan, *files)
    except KeyboardInterrupt:
        typer.echo("Interrupted: run the same command again to finish the copy.", err=True)
        raise typer.Exit(130) from None


def _print_table(copy: TableCopy, done: bool) -> None:
    if done:
        typer.echo(
            f"  {copy.table:<28} {copy.copied:>8} copied {copy.already_there:>8} already there"
            + (f" ({copy.updated} updated)" if copy.updated else "")
        )


def _artifact_files_target(plan: CopyPlan, artifacts_to: str) -> tuple[str, BaseArtifactStore]:
    """Where `--artifacts-to` says and a store that writes there (with the settings of a
    registered store there, in either store's registry), tried before any row is copied:
    a team's store must not get records pointing at files that could not follow them."""
    from branchwork.artifact_stores import artifact_store_for_uri
    from branchwork.exceptions import ConfigurationError
    from branchwork.metadata.artifact_copy import artifact_destination
    from branchwork.metadata.store import get_engine
    from branchwork.stack.components import remember_registered_stores

    destination = artifact_destination(artifacts_to)
    for url in (plan.source_url, plan.target_url):
        remember_registered_stores(get_engine(url))
    store = artifact_store_for_uri(destination)
    probe = store.join(destination, ".branchwork-write-check")
    try:
        store.makedirs(destination)
        store.write_bytes(probe, b"")
        store.remove(probe)
    except Exception as error:  # noqa: BLE001 - any failure to write is the answer
        raise ConfigurationError(
            f"Cannot write artifact files to {destination}: {type(error).__name__}: {error}. "
            "Nothing was copied. Register the artifact store for it with its endpoint and "
            "credentials (`branchwork artifact-store register`), then run this again."
        ) from None
    return destination, store


def _copy_artifacts(plan: CopyPlan, destination: str, store: BaseArtifactStore) -> None:
    """Copy the files to `destination` through `store`, pointing the copied records there."""
    from branchwork.metadata.artifact_copy import copy_artifact_files

    typer.echo(f"Copying artifact files to {destination}.")
    moved = copy_artifact_files(plan, destination, store)
    typer.echo(
        f"Artifacts: {moved.copied} copied, and their records in {plan.target} pointed at "
        f"the copies; {moved.already_there} had been copied before; {moved.kept_inline} small "
        "ones are kept in the metadata store itself and came with the rows."
    )
    for uri in moved.missing:
        typer.echo(f"  missing (left as it was): {uri}", err=True)
