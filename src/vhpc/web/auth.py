"""The manager app's guard: body size limit for every request; Host header and token on TCP.

Requests over the unix socket (mode 0600, root only) need no token. Over TCP every request
but the dashboard page itself (``/`` and ``/static/*``, which hold no data) needs the token,
as ``Authorization: Bearer TOKEN``, ``?token=TOKEN`` (what ``EventSource`` can send), or the
``vhpc_token`` cookie that ``GET /?token=TOKEN`` sets. A TCP request whose ``Host`` header
names none of the listener's addresses is refused (421), so a page on another site cannot
reach the API through DNS rebinding. Refusals use the error contract (:mod:`vhpc.models`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from vhpc.errors import (
    AuthError,
    HostNotAllowedError,
    RequestTooLargeError,
    TokenRejectedError,
    VhpcError,
)
from vhpc.web.errors import error_json
from vhpc.web.listen import TcpAccess

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "vhpc_token"
MAX_BODY = 1024 * 1024  # bytes; larger bodies get 413
PUBLIC_PATHS = ("/", "/favicon.ico")
PUBLIC_PREFIX = "/static/"


def is_unix(scope: Scope) -> bool:
    """True for a request over the manager's unix socket.

    uvicorn sets ``server`` to ``(socket_path, None)`` there (``None`` if unknown) and to
    ``(host, port)`` on TCP.
    """
    server = scope.get("server")
    return server is None or server[1] is None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope.get("headers", [])}


def _query(scope: Scope) -> dict[str, list[str]]:
    raw: bytes = scope.get("query_string", b"")
    return parse_qs(raw.decode("latin-1"))


def presented_token(scope: Scope) -> str:
    """The token a request carries (header, query or cookie), or ''."""
    headers = _headers(scope)
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    query = _query(scope)
    if query.get("token"):
        return query["token"][0]
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is no token
        return ""
    morsel = cookie.get(COOKIE)
    return str(morsel.value) if morsel is not None else ""


class Guard:
    """ASGI middleware: refuses what the module doc says, before the app sees it."""

    def __init__(self, app: ASGIApp, access: TcpAccess, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.access = access
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check one request, then pass it on (its body replayed from memory)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _send_error(send, refusal)
            return
        body = await self._read_body(scope, receive)
        if body is None:
            await _send_error(send, RequestTooLargeError(
                f"request body over {self.max_body} bytes", fix="send less per request"))
            return
        await self.app(scope, _replay(body, receive), self._with_cookie(scope, send))

    def _refusal(self, scope: Scope) -> VhpcError | None:
        if is_unix(scope):
            return None
        host = _headers(scope).get("host", "")
        if not self.access.host_allowed(host):
            return HostNotAllowedError(
                f"Host {host!r} is not an address of this manager",
                fix="use the dashboard URL that 'vhpc status' prints")
        path = scope.get("path", "")
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX):
            return None
        given = presented_token(scope)
        if not given:
            return AuthError("API token required on TCP",
                             fix="send 'Authorization: Bearer TOKEN' (vhpc token, or "
                                 "<state>/run/token), or use the unix socket")
        if not hmac.compare_digest(given.encode(), self.access.token.encode()):
            return TokenRejectedError("bad API token", fix="use the token 'vhpc status' prints")
        return None

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        length = _headers(scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def _with_cookie(self, scope: Scope, send: Send) -> Send:
        """On ``GET /?token=GOOD`` over TCP, also set the token cookie for the page."""
        if is_unix(scope) or scope.get("path") != "/":
            return send
        token = (_query(scope).get("token") or [""])[0]
        if not token or not hmac.compare_digest(token.encode(), self.access.token.encode()):
            return send

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
                message["headers"] = [*message.get("headers", []),
                                      (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        return send_with_cookie


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect, for streaming responses

    return replay


async def _send_error(send: Send, err: VhpcError) -> None:
    status, body = error_json(err)
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if isinstance(err, AuthError):
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
