"""`branchwork db status|upgrade`: where the metadata store is and its schema revision."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


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
    state = "up to date" if found.up_to_date else "behind; run `branchwork db upgrade`"
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
