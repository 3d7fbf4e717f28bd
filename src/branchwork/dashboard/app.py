"""The dashboard's FastAPI application: pages and JSON API, behind the guard.

`/` serves the single page (`static/index.html`, hash routes), `/static/*` its scripts and
styles, `/api/*` the JSON API (OpenAPI at `/api/openapi.json`; FastAPI's interactive docs
are off, since they load their scripts from a CDN and no asset may come from the network).
Errors answer `{"detail": "<one line>"}`: 404 for what does not exist, 409 for an action the
run's state does not allow, 422 for a bad parameter, 503 while the store is unreachable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from branchwork import __version__
from branchwork.dashboard import api
from branchwork.dashboard.security import Guard
from branchwork.exceptions import StoreUnavailableError
from branchwork.metadata.store import get_engine

STATIC = Path(__file__).parent / "static"
DEFAULT_HOST = "127.0.0.1"
log = logging.getLogger("branchwork.dashboard")


def create_app(
    engine_url: str | None = None, token: str | None = None, host: str = DEFAULT_HOST
) -> FastAPI:
    """The dashboard over the store at `engine_url` (default: the configured one). With a
    `token`, every request must carry it; without, requests must name a loopback host (or
    `host`): see `security`."""
    app = FastAPI(
        title="branchwork dashboard",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = get_engine(engine_url)
    app.state.token_required = token is not None
    app.include_router(api.router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    app.add_api_route("/", index, include_in_schema=False)
    app.add_exception_handler(RequestValidationError, bad_parameter)
    app.add_exception_handler(StoreUnavailableError, store_unavailable)
    app.add_exception_handler(Exception, internal_error)
    app.add_middleware(Guard, token=token, hosts=[host])
    return app


def index() -> Any:
    page = STATIC / "index.html"
    if not page.is_file():
        return PlainTextResponse(
            f"The dashboard's pages are missing from this installation ({page}); reinstall "
            "branchwork.",
            status_code=500,
        )
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


async def bad_parameter(request: Request, error: Exception) -> JSONResponse:
    """422 with one line naming the parameter, as the pages show `detail` as it is."""
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    lines = [
        f"{'.'.join(str(part) for part in problem['loc'][1:]) or 'request'}: {problem['msg']}"
        for problem in problems
    ]
    return JSONResponse({"detail": "; ".join(lines) or str(error)}, status_code=422)


async def store_unavailable(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error).strip().splitlines()[0]}, status_code=503)


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    """A bug: the traceback goes to the server's log, the page gets one line without it
    (an exception's text may hold what the page should not show)."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return JSONResponse(
        {"detail": f"Internal error ({type(error).__name__}); the dashboard's log has details."},
        status_code=500,
    )
