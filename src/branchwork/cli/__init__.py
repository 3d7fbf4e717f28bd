"""The `branchwork` command (Typer + Rich): thin — parse, call `client`/`metadata`, print.

`import branchwork` never imports this package; the console script calls `main()`.
"""

from __future__ import annotations


def main() -> None:
    """Entry point of the `branchwork` console script."""
    from branchwork.cli.app import app

    app(prog_name="branchwork")


__all__ = ["main"]
