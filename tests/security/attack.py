"""The attack suite's map of the API and its leak detector.

The routes attacked are the application's own: ``MOUNTED`` is every ``/api/{tenant_id}/…``
route of ``create_app()``'s route table, each with its entry of ``ATTACKS`` (how to call it).
A route the app gains without an entry is in ``UNCOVERED``, an entry whose route the app no
longer serves in ``GONE``; ``tests/security/test_paths.py`` fails on either, so the suite can
neither miss a new route nor silently drop the cases of one that disappeared. Covering a
route is one entry here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.main import create_app
from app.settings import Settings
from tests.factories import TestTenant, TestUser, World


@dataclass(frozen=True)
class Route:
    """One API route: method, path under ``/api/{tenant_id}/``, the owner's success status, a valid body."""

    method: str
    path: str
    ok: int
    body: dict[str, Any] | None = None
    query: tuple[str, ...] = ()
    body_fields: tuple[str, ...] = field(default=())
    streams: bool = False  # a 200 is an open stream (Server-Sent Events): never read to its end here

    @property
    def by_session(self) -> bool:
        """The route names a session in its path."""
        return "{session_id}" in self.path

    @property
    def writes(self) -> bool:
        """The route changes data."""
        return self.method != "GET"

    def url(self, tenant_id: uuid.UUID | str, session_id: uuid.UUID | str | None = None) -> str:
        """The concrete URL."""
        path = self.path.replace("{session_id}", str(session_id)) if self.by_session else self.path
        return f"/api/{tenant_id}/{path}"

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ATTACKS = (
    Route(
        "GET",
        "sessions",
        200,
        query=("user_id", "limit", "offset", "sort_by", "order", "archived", "pinned", "agent_id", "cursor", "q"),
    ),
    Route("POST", "sessions/archive", 200, body={"session_ids": [str(uuid.UUID(int=1))]}, body_fields=("session_ids",)),
    Route("GET", "me", 200),
    Route("GET", "users", 200, query=("limit", "offset")),
    Route("GET", "agents", 200),
    Route("POST", "sessions", 201, body={"title": "attack"}, body_fields=("title", "agent_id")),
    Route("GET", "sessions/{session_id}", 200),
    Route("PATCH", "sessions/{session_id}", 200, body={"title": "attack"}, body_fields=("title", "pinned", "archived")),
    Route("DELETE", "sessions/{session_id}", 204),
    Route("GET", "sessions/{session_id}/messages", 200, query=("limit", "offset", "order", "cursor")),
    Route(
        "POST",
        "sessions/{session_id}/messages",
        201,
        body={"role": "user", "content": "attack"},
        body_fields=("role", "content"),
    ),
    # Its 200s are open streams, attacked over a real server by tests/security/test_event_isolation.py;
    # here, its refusals (401, 403, 400) like every route's.
    Route("GET", "events", 200, query=("user_id",), streams=True),
    Route("GET", "access-log", 200, query=("session_id", "limit", "offset")),
    Route("GET", "export", 200, query=("user_id",)),  # NDJSON, finite: read whole like any body
)
HTTP_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every ``/api`` route the application serves, path parameters without types."""
    found = set()
    for route in create_app(Settings(app_env="development")).routes:
        if not route.path.startswith("/api/"):
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path).removeprefix("/api/{tenant_id}/")
        found |= {(method, path) for method in getattr(route, "methods", ()) if method in HTTP_METHODS}
    return sorted(found)


APP_ROUTES = app_routes()
_BY_KEY = {(r.method, r.path): r for r in ATTACKS}
MOUNTED = tuple(_BY_KEY[key] for key in APP_ROUTES if key in _BY_KEY)
UNCOVERED = [key for key in APP_ROUTES if key not in _BY_KEY]
GONE = [key for key in _BY_KEY if key not in APP_ROUTES]
READS = tuple(r for r in MOUNTED if not r.writes and not r.streams)  # GETs answered with a whole body
BY_SESSION = tuple(r for r in MOUNTED if r.by_session)


def headers(token: str) -> dict[str, bytes]:
    """An Authorization header (UTF-8 bytes: forged tokens need not be ASCII)."""
    return {"Authorization": f"Bearer {token}".encode()}


def tenant_markers(tenant: TestTenant) -> set[str]:
    """Strings that only a response about ``tenant`` may contain: ids, emails (in titles too), contents."""
    users = (tenant.admin, tenant.alice, tenant.bob)
    markers = {str(tenant.tenant_id), f"{tenant.name} message"}
    markers |= {str(u.user_id) for u in users} | {u.email for u in users}
    markers |= {str(a) for a in tenant.agents.values()} | {str(s) for s in tenant.all_session_ids}
    return markers


def user_markers(tenant: TestTenant, user: TestUser) -> set[str]:
    """Strings of the other users of ``user``'s tenant that a supporter must never see."""
    others = [u for u in (tenant.admin, tenant.alice, tenant.bob) if u.user_id != user.user_id]
    markers = {u.email for u in others}
    markers |= {str(s) for u in others for s in tenant.sessions[u.user_id]}
    return markers


def foreign_markers(world: World, attacker: TestUser) -> set[str]:
    """Everything ``attacker`` must never read: the other tenant's rows, and (supporter) colleagues' rows."""
    own, other = (world.a, world.b) if attacker.tenant_id == world.a.tenant_id else (world.b, world.a)
    markers = tenant_markers(other)
    if attacker.role != "admin":
        markers |= user_markers(own, attacker)
    return markers


def leaks(body: str, markers: Iterable[str], sent: str = "") -> set[str]:
    """The markers found in a response ``body`` (leaving out what the attacker sent in ``sent``)."""
    return {m for m in markers if m in body and m not in sent}
