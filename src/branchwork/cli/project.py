"""`branchwork init`: a project-local home, `.branchwork/`, found from the project's folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def init(
    directory: Annotated[
        Path, typer.Argument(help="The project folder (created if missing).", show_default=False)
    ] = Path("."),
) -> None:
    """Create DIR/.branchwork/ with a metadata store; commands run in DIR or below use it."""
    from branchwork.metadata.store_admin import init_project_store

    home, existed = init_project_store(directory)
    verb = "Already initialized" if existed else "Initialized"
    typer.echo(f"{verb}: branchwork store in {home}")
    typer.echo(f"Runs started in {home.parent} or below record there.")
    for name in ("BRANCHWORK_HOME", "BRANCHWORK_STORE_URL"):
        if os.environ.get(name):
            typer.echo(f"Note: {name} is set and takes precedence over {home}.", err=True)
