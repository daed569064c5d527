"""Who may read the journal through the web view: whoever holds this start's token.

The token is random per start (as Jupyter's), printed once in the URL.  A request
carries it as the query parameter ``token``, as ``Authorization: Bearer TOKEN``, or as
the cookie that the first page with the token in its URL sets (HttpOnly, SameSite
Strict, scoped to this port's path); every other request gets 401.  The server binds to
127.0.0.1 unless told otherwise: another user of the machine can reach the port but
not the token.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = "kleio_token"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

REFUSED = (
    b'{"error":"this Kleio UI needs its token: open the URL that `kleio ui` printed, '
    b'or send Authorization: Bearer TOKEN"}'
)


def new_token() -> str:
    return secrets.token_urlsafe(24)


class TokenRequired:
    """ASGI middleware: the wrapped app sees only requests that carry the token."""

    def __init__(self, app: App, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        from_query = self._matches(_query_token(scope))
        if not (from_query or self._matches(_bearer(scope)) or self._matches(_cookie(scope))):
            await _refuse(send)
            return
        if from_query:
            send = self._setting_cookie(send)
        await self._app(scope, receive, send)

    def _matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self._token)

    def _setting_cookie(self, send: Send) -> Send:
        cookie = f"{COOKIE}={self._token.decode()}; Path=/; HttpOnly; SameSite=Strict"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        return sending


def _query_token(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode(errors="replace")).get("token")
    return values[0] if values else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode(errors="replace")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def _cookie(scope: Scope) -> str | None:
    value = _header(scope, b"cookie")
    if not value:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(value)
    except Exception:  # a malformed Cookie header is no token  # noqa: BLE001
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
        }
    )
    await send({"type": "http.response.body", "body": REFUSED})
