"""The web page at ``/`` (static files) and, in development only, ``/dev/users`` + ``/dev/token``.

The page is plain HTML/CSS/JS (no build step) and calls the public API like any other
frontend. The ``/dev`` routes let a developer sign in as a seeded user without pasting a
token; they are registered only with ``APP_ENV=development`` set explicitly and no
``JWT_SECRET``/``JWT_PUBLIC_KEY`` (``Settings.uses_development_key``).
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, Response, Router, get, post
from litestar.datastructures import CacheControlHeader, State
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from app.auth.tokens import mint_token
from app.db.context import set_context
from app.db.engine import get_engine
from app.inputs import Id
from app.seed import TENANTS, demo_id
from app.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    # The page and the docs load only their own files and talk only to their own origin; no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class DevUser(msgspec.Struct, frozen=True):
    """A seeded user a developer may sign in as."""

    user_id: UUID
    tenant_id: UUID
    tenant_name: str
    email: str
    display_name: str
    role: str


class DevTokenRequest(msgspec.Struct, frozen=True):
    """Whom to mint a token for."""

    tenant_id: Id
    user_id: Id


class DevToken(msgspec.Struct, frozen=True):
    """A signed JWT for the requested user (expires in an hour)."""

    token: str


USERS_SQL = """
    SELECT u.user_id, u.tenant_id, t.name AS tenant_name, u.email, u.display_name, u.role
    FROM users u JOIN tenants t ON t.tenant_id = u.tenant_id
    WHERE u.tenant_id = $1 AND ($2::uuid IS NULL OR u.user_id = $2)
    ORDER BY u.role, u.email
"""


async def _users_of(connection: asyncpg.Connection, tenant_id: UUID, user_id: UUID | None = None) -> list[DevUser]:
    """Users of one tenant, read under that tenant's (transaction-local) context like any request."""
    await set_context(connection, tenant_id)
    rows = await connection.fetch(USERS_SQL, tenant_id, user_id)
    return msgspec.convert([dict(row) for row in rows], list[DevUser])


class DevController(Controller):
    """Development-only sign-in helpers (absent in production)."""

    path = "/dev"
    tags = ["development"]
    include_in_schema = False

    @get("/users", summary="Seeded users (development only)")
    async def users(self) -> list[DevUser]:
        """The users of the seeded demo tenants (eTMS, eFMS, Vela)."""
        found: list[DevUser] = []
        async with get_engine().connections.acquire(timeout=5.0) as connection, connection.transaction():
            for name in TENANTS:
                found.extend(await _users_of(connection, demo_id(name)))
        return found

    @post("/token", summary="Mint a token (development only)")
    async def token(self, data: JSONBody[DevTokenRequest], state: State) -> DevToken:
        """A one-hour token for a user of any tenant; 404 when the user is not in that tenant."""
        settings: Settings = state.settings
        async with get_engine().connections.acquire(timeout=5.0) as connection, connection.transaction():
            users = await _users_of(connection, data.tenant_id, data.user_id)
        if not users:
            raise NotFoundException(detail="no such user in that tenant")
        return DevToken(token=mint_token(data.user_id, data.tenant_id, settings))


def add_security_headers(response: Response[object]) -> Response[object]:
    """``after_request`` hook: the page's security headers (CSP, nosniff, no referrer) on ``response``."""
    response.headers.update(SECURITY_HEADERS)
    return response


def web_handlers(settings: Settings) -> list[ControllerRouterHandler]:
    """The page's routes: static files at ``/``, plus ``/dev/*`` only with the development key."""
    page: Router = create_static_files_router(
        path="/",
        directories=[STATIC_DIR],
        html_mode=True,
        name="web",
        cache_control=CacheControlHeader(no_cache=True),
        after_request=add_security_headers,
    )
    handlers: list[ControllerRouterHandler] = [page]
    if settings.uses_development_key:
        handlers.append(DevController)
    return handlers
