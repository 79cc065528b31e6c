"""The measured scenarios: HTTP requests for wrk, and the same transaction for the floor.

The floor replays the app's own transaction: the request's BEGIN with its time limits
(``app.db.transaction.Limits``), the tenant context with the user lookup
(``app.db.context.set_context``), and the page and count queries of the domains, compiled
by Piccolo exactly as the app runs them. A scenario whose route the app does not serve
is listed and reported as pending.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from uuid import UUID

import asyncpg
from piccolo.querystring import QueryString

from app.auth.tokens import mint_token
from app.cursors import Position, cursor_key, make_cursor
from app.db.context import set_context
from app.db.transaction import Limits
from app.main import create_app
from app.messages.queries import add_statement, history_statement
from app.sessions import search
from app.sessions.queries import Filters, list_statement
from app.settings import Settings
from bench import harness
from bench.generate import TENANTS, Loaded
from bench.harness import Database, Report, Request, Row, Transaction

SETTINGS = Settings(jwt_secret=harness.JWT_SECRET, app_env="production")
LIMITS = Limits(
    acquire_timeout=SETTINGS.pool_timeout,
    statement_timeout_ms=SETTINGS.statement_timeout_ms,
    idle_in_transaction_timeout_ms=SETTINGS.idle_in_transaction_timeout_ms,
    tenant_max=SETTINGS.tenant_max,
)


@dataclass(frozen=True)
class Scenario:
    """One measured request kind."""

    name: str
    route: tuple[str, str]  # (method, path as the app registers it)
    requests: Sequence[Request]
    floor: Transaction | None = None
    note: str = ""


@dataclass
class Context:
    """Tokens and ids of a loaded data set."""

    loaded: Loaded
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> str:
        """The tenant of the power user (eTMS)."""
        return self.loaded.tenants[TENANTS[0]]

    def token(self, user_id: str) -> str:
        """A 2-hour token for a user of eTMS."""
        if user_id not in self.tokens:
            self.tokens[user_id] = mint_token(UUID(user_id), UUID(self.tenant), SETTINGS, ttl_seconds=7200)
        return self.tokens[user_id]


def app_routes() -> set[tuple[str, str]]:
    """(method, path without parameter types) of every route the app serves."""
    app = create_app(SETTINGS)
    return {(m, re.sub(r":\w+}", "}", route.path)) for route in app.routes for m in getattr(route, "methods", ())}


def _compiled(template: str, args: Sequence[Any]) -> tuple[str, list[Any]]:
    sql, values = QueryString(template, *args).compile_string(engine_type="postgres")
    return sql, values


def replay(tenant_id: str, user_id: str, queries: Sequence[tuple[str, list[Any]]]) -> Transaction:
    """A request's transaction as the app runs it, without HTTP: BEGIN with the limits, the context with
    the guard's user lookup, then the route's query (the n-th transaction takes ``queries[n % len(queries)]``),
    COMMIT."""
    tenant, user = UUID(tenant_id), UUID(user_id)

    async def transaction(connection: asyncpg.Connection, n: int) -> None:
        sql, args = queries[n % len(queries)]
        await connection.execute(LIMITS.begin_sql)
        try:
            await set_context(connection, tenant, user)
            await connection.fetch(sql, *args)
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")

    return transaction


def list_floor(
    tenant_id: str, user_id: str, owner: str | None, limit: int, offset: int, after: Position | None = None
) -> Transaction:
    """The list request's transaction (``after``: the position a cursor carries)."""
    statement = list_statement(
        UUID(tenant_id),
        Filters(user_id=UUID(owner) if owner else None),
        limit=limit,
        offset=offset,
        sort_by="updated_at",
        order="desc",
        after=after,
    )
    return replay(tenant_id, user_id, [_compiled(*statement)])


LIST_ROUTE = ("GET", "/api/{tenant_id}/sessions")
HISTORY_ROUTE = ("GET", "/api/{tenant_id}/sessions/{session_id}/messages")
POST_ROUTE = ("POST", "/api/{tenant_id}/sessions/{session_id}/messages")
POST_BODY = {"role": "user", "content": "Any news on shipment 4711? The customer is asking again."}


def list_scenario(ctx: Context, name: str, user_id: str, *, owner: str | None, offset: int = 0) -> Scenario:
    """``GET /sessions`` as ``user_id`` (default limit 10)."""
    query = f"?offset={offset}" if offset else ""
    path = f"/api/{ctx.tenant}/sessions{query}"
    return Scenario(
        name,
        LIST_ROUTE,
        [Request(path, ctx.token(user_id))],
        list_floor(ctx.tenant, user_id, owner, 10, offset),
    )


def cursor_scenario(ctx: Context, name: str, user_id: str, position: Position) -> Scenario:
    """``GET /sessions?cursor=…`` of ``user_id``'s own list, with the cursor the app makes for ``position``."""
    tenant = UUID(ctx.tenant)
    filters = Filters(user_id=UUID(user_id))
    bound = {"tenant_id": tenant, **filters.bound(), "sort_by": "updated_at", "order": "desc"}
    cursor = make_cursor(cursor_key(SETTINGS), bound, position)
    path = f"/api/{ctx.tenant}/sessions?cursor={quote(cursor)}"
    return Scenario(
        name, LIST_ROUTE, [Request(path, ctx.token(user_id))], list_floor(ctx.tenant, user_id, user_id, 10, 0, position)
    )


def history_scenario(ctx: Context, name: str, session_ids: Sequence[str]) -> Scenario:
    """``GET /sessions/{id}/messages`` (first page of 50, oldest first) as the sessions' owner."""
    user_id = ctx.loaded.heavy
    token = ctx.token(user_id)
    requests = [Request(f"/api/{ctx.tenant}/sessions/{s}/messages", token) for s in session_ids]
    tenant = UUID(ctx.tenant)
    pages = [_compiled(*history_statement(tenant, UUID(s), limit=50, offset=0)) for s in session_ids]
    return Scenario(name, HISTORY_ROUTE, requests, replay(ctx.tenant, user_id, pages))


def post_scenario(ctx: Context, name: str, session_ids: Sequence[str]) -> Scenario:
    """``POST /sessions/{id}/messages`` into the power user's sessions, rotating over them."""
    user_id = ctx.loaded.power
    token = ctx.token(user_id)
    body = json.dumps(POST_BODY)
    requests = [Request(f"/api/{ctx.tenant}/sessions/{s}/messages", token, "POST", body) for s in session_ids]
    tenant, user = UUID(ctx.tenant), UUID(user_id)
    inserts = [
        _compiled(*add_statement(tenant, UUID(s), user, POST_BODY["role"], POST_BODY["content"])) for s in session_ids
    ]
    return Scenario(name, POST_ROUTE, requests, replay(ctx.tenant, user_id, inserts))


def run(
    report: Report,
    db: Database,
    scenarios: Sequence[Scenario],
    concurrencies: Sequence[int],
    workers: Sequence[int],
    deadline: float,
) -> None:
    """Each worker count's server over every scenario and concurrency, the floor measured just before.

    Floor and HTTP run back to back (the idle server uses no CPU meanwhile), so both see
    the same machine load; the ratio is the figure to compare across runs.
    """
    routes = app_routes()
    ready = [s for s in scenarios if s.route in routes]
    for s in scenarios:
        if s.route not in routes:
            report.add(Row(s.name, 0, 0, None, None, f"pending: {s.route[0]} {s.route[1]} is not in the app yet"))
    for w in workers:
        with harness.api_server(db, w) as server:
            for s in ready:
                for c in concurrencies:
                    if time.monotonic() > deadline:
                        print(f"time budget spent: skipping {s.name} w={w} c={c}", file=sys.stderr)
                        continue
                    floor = asyncio.run(harness.floor_run(db.runtime_dsn, s.floor, c, w)) if s.floor else None
                    http = harness.http_run(server, s.requests, c)
                    report.add(Row(s.name, w, c, http, floor, s.note if s.floor is None else ""))


def int_list(name: str, default: str) -> list[int]:
    """A comma-separated list of integers from the environment."""
    return [int(x) for x in os.environ.get(name, default).split(",") if x.strip()]


def search_floor(tenant_id: str, user_id: str, owner: str | None, q: str) -> Transaction:
    """The search request's transaction: the term counts that choose the plan, then the search."""
    tenant, user = UUID(tenant_id), UUID(user_id)
    filters = Filters(user_id=UUID(owner) if owner else None)
    terms = search.terms_of(q)
    ranges_sql, ranges_args = _compiled(*search.ranges_statement(tenant, filters, terms))

    async def transaction(connection: asyncpg.Connection, n: int) -> None:
        await connection.execute(LIMITS.begin_sql)
        try:
            await set_context(connection, tenant, user)
            words = [int(row["words"]) for row in await connection.fetch(ranges_sql, *ranges_args)]
            statement = search.search_statement(
                tenant,
                filters,
                terms,
                driver=search.driver_of(terms, words),
                limit=11,
                offset=0,
                sort_by="updated_at",
                order="desc",
            )
            sql, args = _compiled(*statement)
            await connection.fetch(sql, *args)
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")

    return transaction


def search_scenario(ctx: Context, name: str, user_id: str, *, owner: str | None, q: str) -> Scenario:
    """``GET /sessions?q=…`` as ``user_id`` (default limit 10)."""
    path = f"/api/{ctx.tenant}/sessions?q={quote(q)}"
    return Scenario(name, LIST_ROUTE, [Request(path, ctx.token(user_id))], search_floor(ctx.tenant, user_id, owner, q))
