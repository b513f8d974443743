"""Signing in, and the caller of each request as a :class:`~cadastre.auth.Principal`.

A request names its caller by ``Authorization: Bearer <token>`` (a token from
``POST /auth/token``) or ``X-API-Key: <key>`` (machine clients; a key may also be
sent as the bearer token). With neither it is the anonymous public. A named caller
that is not valid (expired token, revoked key, disabled account) is a 401: a
client is never silently served the public view instead.

Accounts behind tokens and keys are looked up at most every few seconds per
caller, so a disabled account or revoked key stops working within
:data:`ACCOUNT_TTL_S` seconds and a busy map client costs no query per tile.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, OAuth2PasswordRequestForm
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas import errors
from cadastre import auth
from cadastre.auth import PUBLIC, Principal
from cadastre.db import accounts as acc
from cadastre.db.engine import Database
from cadastre.errors import Unauthenticated

ACCOUNT_TTL_S = 5.0
_CACHE_MAX = 10_000

_bearer = OAuth2PasswordBearer(
    tokenUrl="auth/token",
    auto_error=False,
    description="A token from POST /auth/token (or an API key as the bearer token).",
)
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key of a machine client."
)


class PrincipalCache:
    """Principals by credential for a few seconds (thread-safe, bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[float, Principal]] = {}

    def get(self, key: tuple[str, str]) -> Principal | None:
        with self._lock:
            hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: tuple[str, str], who: Principal) -> None:
        with self._lock:
            if len(self._items) >= _CACHE_MAX:
                self._items.clear()
            self._items[key] = (time.monotonic() + ACCOUNT_TTL_S, who)


def _lookup(db: Database, kind: str, value: str) -> Principal:
    with db.begin() as conn:
        account = acc.by_key(conn, value) if kind == "key" else acc.by_username(conn, value)
    return account.principal


async def principal(
    request: Request,
    token: Annotated[str | None, Depends(_bearer)] = None,
    key: Annotated[str | None, Depends(_api_key)] = None,
) -> Principal:
    """The caller of this request (anonymous when it names none)."""
    if not token and not key:
        return PUBLIC
    if token and key:
        raise Unauthenticated("send either a bearer token or an API key, not both")
    if key or (token and token.startswith(auth.KEY_PREFIX)):
        kind, value = "key", str(key or token)
        cache_key = ("key", auth.key_hash(value))
    else:
        kind = "user"
        value = auth.token_subject(request.app.state.secret, str(token))
        cache_key = ("user", value)
    cache: PrincipalCache = request.app.state.principals
    who = cache.get(cache_key)
    if who is None:
        who = await run_in_threadpool(_lookup, request.app.state.db, kind, value)
        cache.put(cache_key, who)
    request.state.principal = who
    return who


WhoDep = Annotated[Principal, Depends(principal)]


async def signed_in(who: WhoDep) -> Principal:
    """The caller of a write: a 401 before the body is validated when there is none."""
    auth.require_signed_in(who)
    return who


#: The caller of a route that writes: signing in is checked before anything else.
WriterDep = Annotated[Principal, Depends(signed_in)]


class CallerVary:
    """Answers depend on who asks: every answer says so (``Vary``), and one made for a
    signed-in caller is marked ``private`` so no shared cache keeps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.append("Vary", "Authorization, X-API-Key")
                who = scope.get("state", {}).get("principal")
                if who is not None and who.signed_in:
                    cc = headers.get("Cache-Control")
                    headers["Cache-Control"] = f"private, {cc}" if cc else "private"
            await send(message)

        await self.app(scope, receive, send_marked)


router = APIRouter(prefix="/auth", tags=["accounts"])


@router.post(
    "/token",
    summary="Sign in: a short-lived access token",
    responses=errors(401, 422),
)
def token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> dict[str, Any]:
    """OAuth2 password flow: send ``username`` and ``password`` as a form; use the
    ``access_token`` as ``Authorization: Bearer <token>`` until it expires."""
    db: Database = request.app.state.db
    with db.begin() as conn:
        account = acc.by_password(conn, form.username, form.password)
    settings = request.app.state.settings
    access, seconds = auth.issue_token(
        request.app.state.secret, account.username, settings.token_minutes
    )
    return {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": seconds,
        "role": account.role,
        "province": account.province,
    }


@router.get("/me", summary="Who the request is made as", responses=errors(401))
def me(who: WhoDep) -> dict[str, Any]:
    """The caller's name, role and province (``public`` when not signed in)."""
    return {
        "username": who.username,
        "role": who.role,
        "province": who.province,
        "sees_unpublished": who.unpublished_scope,
    }
