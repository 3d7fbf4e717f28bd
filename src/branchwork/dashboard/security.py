"""Who may use the dashboard, and how its actions are protected (one ASGI middleware).

- Without a token (the default, bound to loopback), requests must name a loopback host in
  their `Host` header: a web page whose name is re-pointed at 127.0.0.1 (DNS rebinding)
  reaches nothing.
- With a token (always off loopback: `BRANCHWORK_DASHBOARD_TOKEN`, or one generated at
  start), every request carries it: `Authorization: Bearer <token>`, the cookie, or
  `?token=` — which sets the cookie (HttpOnly, SameSite=Strict), so the printed URL opens the
  dashboard once and its pages need nothing more. Tokens are compared in constant time.
- Actions (anything but GET/HEAD/OPTIONS) need the header `X-Branchwork-Action: 1`, which a
  cross-site form cannot send, and an `Origin`, when sent, of this very host.
- Every response tells the browser to keep data inert: no MIME sniffing, no framing, no
  referrer (the token stays here), scripts and styles from this origin only, and API answers
  are never cached.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import socket
from collections.abc import Collection
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from branchwork.exceptions import ConfigurationError

TOKEN_ENV = "BRANCHWORK_DASHBOARD_TOKEN"
ACTION_HEADER = "x-branchwork-action"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]
MISSING_TOKEN = (
    "This dashboard needs its token: open the URL `branchwork dashboard` printed (it ends in "
    "?token=...), or send the header 'Authorization: Bearer <token>'."
)
WRONG_TOKEN = (
    "Wrong dashboard token: use the one `branchwork dashboard` printed (or the value of "
    f"{TOKEN_ENV} where it runs)."
)
MISSING_ACTION_HEADER = (
    "Actions need the header 'X-Branchwork-Action: 1' (the dashboard's pages send it; a "
    "cross-site form cannot)."
)


TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]{16,}")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_token(token: str) -> str:
    """The token, if it can travel in a URL and a cookie as it is and is not too short to
    guess; a ConfigurationError saying what to set otherwise."""
    if not TOKEN_CHARACTERS.fullmatch(token):
        raise ConfigurationError(
            f"{TOKEN_ENV} must be at least 16 characters among letters, digits and . _ ~ - "
            "(or unset it: a token is then generated)."
        )
    return token


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is this machine only."""
    name = host.strip("[]")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in found)


def cookie_name(port: int | None) -> str:
    """One cookie per port: browsers share cookies across a host's ports."""
    return f"branchwork_dashboard_{port or 0}"


class Guard:
    """The middleware: refuses what the module docstring says, adds the headers."""

    def __init__(self, app: Any, token: str | None, hosts: Collection[str] = ()) -> None:
        self.app = app
        self.token = token
        self.hosts = frozenset(name.lower() for name in (*LOOPBACK_NAMES, *hosts))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan; the dashboard has no websockets
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, detail = refusal
            await _refuse(scope, receive, send, status, detail)
            return
        cookie = self._cookie_to_set(scope)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if scope["path"].startswith("/api/"):
                    extra.append((b"cache-control", b"no-store"))
                if cookie is not None:
                    extra.append((b"set-cookie", cookie.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Any, headers: dict[str, str]) -> tuple[int, str] | None:
        if self.token is None:
            host = _host_name(headers.get("host", ""))
            if host not in self.hosts:
                return 403, (
                    f"This dashboard answers requests for 127.0.0.1 or localhost only (this one "
                    f"was for {host or 'no host'!r}); open the URL `branchwork dashboard` "
                    "printed."
                )
        else:
            given = self._given_token(scope, headers)
            if given is None:
                return 401, MISSING_TOKEN
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return 401, WRONG_TOKEN
        if scope.get("method", "GET") not in SAFE_METHODS:
            return _action_refusal(headers)
        return None

    def _given_token(self, scope: Any, headers: dict[str, str]) -> str | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        from_query = _query_token(scope)
        if from_query is not None:
            return from_query
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token
            return None
        morsel = jar.get(cookie_name(_port(scope)))
        return morsel.value if morsel is not None else None

    def _cookie_to_set(self, scope: Any) -> str | None:
        """The cookie that keeps a token given in the URL, so the pages need not carry it."""
        if self.token is None or _query_token(scope) is None:
            return None
        return f"{cookie_name(_port(scope))}={self.token}; Path=/; HttpOnly; SameSite=Strict"


def _action_refusal(headers: dict[str, str]) -> tuple[int, str] | None:
    if headers.get(ACTION_HEADER) != "1":
        return 403, MISSING_ACTION_HEADER
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        return 403, (
            f"Cross-site action refused: it came from {origin!r}, not from this dashboard "
            f"({headers.get('host', '')!r})."
        )
    return None


def _headers(scope: Any) -> dict[str, str]:
    return {
        key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]
    }


def _host_name(host: str) -> str:
    """The name in a Host header, without its port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _query_token(scope: Any) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _port(scope: Any) -> int | None:
    server = scope.get("server")
    return int(server[1]) if server and server[1] is not None else None


async def _refuse(scope: Any, receive: Any, send: Any, status: int, detail: str) -> None:
    from starlette.responses import JSONResponse, PlainTextResponse

    extra = {"www-authenticate": "Bearer"} if status == 401 else {}
    response: Any
    if scope["path"].startswith("/api/"):
        response = JSONResponse({"detail": detail}, status_code=status, headers=extra)
    else:
        response = PlainTextResponse(detail, status_code=status, headers=extra)
    response.headers.update({k.decode(): v.decode() for k, v in SECURITY_HEADERS})
    await response(scope, receive, send)
