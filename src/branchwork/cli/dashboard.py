"""`branchwork dashboard`: serve the web dashboard over the configured store.

The socket is bound here, before uvicorn starts, so a port in use is one clear error, `--port
0` picks a free port, and the URL printed is the one that answers. Off loopback a token is
required (`BRANCHWORK_DASHBOARD_TOKEN`, or one generated now) and the URL printed carries it.
uvicorn's access log is off: it would write every URL, tokens included.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from branchwork.exceptions import BranchworkError

DEFAULT_PORT = 8237
SHUTDOWN_GRACE_SECONDS = 2  # requests in flight get this long after Ctrl-C
BACKLOG = 2048  # uvicorn's own default


def dashboard(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Anything but loopback (e.g. 0.0.0.0 for a team) "
            "requires a token: $BRANCHWORK_DASHBOARD_TOKEN, or one generated and printed.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one.")
    ] = DEFAULT_PORT,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the dashboard in a browser.")
    ] = False,
) -> None:
    """Serve the web dashboard (runs, graphs, timelines, logs, resume/stop) until Ctrl-C."""
    try:
        import fastapi  # noqa: F401 - only to say what is missing
        import uvicorn
    except ImportError as error:
        raise BranchworkError(
            f"The dashboard needs FastAPI and uvicorn ({error.name} is missing): "
            "pip install 'branchwork[ui]'."
        ) from None
    from branchwork.dashboard.app import create_app
    from branchwork.dashboard.security import TOKEN_ENV, check_token, is_loopback, new_token
    from branchwork.metadata.store import get_engine

    given = os.environ.get(TOKEN_ENV)
    if given:
        token: str | None = check_token(given)
    else:
        token = None if is_loopback(host) else new_token()
    listener = _listen(host, port)
    app = create_app(token=token, host=host)
    url = _url(host, listener.getsockname()[1], token)
    typer.echo(f"Dashboard: {url}")
    typer.echo(f"Store:     {get_engine().url.render_as_string(hide_password=True)}")
    if token and not given:
        typer.echo(f"A token was generated for this server; set {TOKEN_ENV} to choose one.")
    typer.echo("Press Ctrl-C to stop.")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), or a BranchworkError saying what to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
    except OSError as error:
        raise BranchworkError(f"Cannot listen on {host!r}: {error}; check --host.") from None
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        hint = "pass another --port (0 picks a free one)" if port else "check --host"
        raise BranchworkError(
            f"Cannot listen on {host}:{port}: {error.strerror}; {hint}."
        ) from None
    # Listening now, not when uvicorn starts: a client that connects as soon as the URL is
    # printed waits in the backlog instead of being refused.
    listener.listen(BACKLOG)
    return listener


def _url(host: str, port: int, token: str | None) -> str:
    """The URL to open: this machine's name when listening everywhere, the token in it."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
