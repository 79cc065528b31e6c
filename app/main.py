"""The Litestar application: ``create_app()`` wires settings, the database pool, routes and docs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import ResponseHeader, State
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_200_OK, HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ControllerRouterHandler

from app.agents.controllers import AgentController
from app.auth.guards import provide_user, tenant_guard
from app.db.engine import get_engine
from app.db.replica import LSN_PATTERN, READ_AFTER_HEADER, Replica
from app.db.selfcheck import check_runtime_role
from app.db.transaction import (
    DATABASE_DOWN_ERRORS,
    DRIVER_ERRORS,
    RECOVERY_CONFLICT_ERRORS,
    RETRY_AFTER_SECONDS,
    Limits,
    TenantShares,
    TransactionMiddleware,
    database_error_response,
)
from app.errors import internal_error, validation_error
from app.events.controllers import EventController
from app.events.hub import Hub
from app.inputs import StrictRequest, plain_values
from app.messages.controllers import MessageController
from app.openapi import ClosedStructSchemaPlugin, IdSchemaPlugin
from app.privacy.controllers import PrivacyController
from app.sessions.controllers import SessionController
from app.settings import Settings
from app.users.controllers import MeController, UserController
from app.web.controllers import web_handlers
from app.web.docs import SwaggerUIPage, docs_router

log = logging.getLogger("app")

READ_AFTER_OUT = (
    "On the answer to a successful write: the primary's WAL position after the commit (e.g. `16/B374D848`). "
    "Send it back as `X-Read-After` on later reads."
)
READ_AFTER_IN = (
    "The latest `X-Read-After` this client received: with a read replica, the read is served by it only once it "
    "has replayed that far, else by the primary, so a client never misses its own write. Malformed: 400."
)


@get("/health", tags=["operations"], summary="Liveness", sync_to_thread=False)
def health() -> dict[str, str]:
    """200 while the process runs; does not touch the database."""
    return {"status": "ok"}


@get(
    "/ready",
    tags=["operations"],
    summary="Readiness",
    description=(
        "200 when the database (the primary) answers within a second, else 503 with Retry-After. "
        "A read replica's health is not part of it: a replica that is down is skipped and logged."
    ),
    responses={503: ResponseSpec(data_container=dict[str, str], description="The database does not answer")},
)
async def ready() -> Response[dict[str, str]]:
    """200 when a pooled connection answers ``SELECT 1``, else 503."""
    try:
        async with get_engine().connections.acquire(timeout=1.0) as connection:
            await connection.execute("SELECT 1", timeout=1.0)  # simple protocol: fine behind any pooler
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"
        log.warning("not ready: %r", error)
        return Response(
            {"status": "unavailable"},
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return Response({"status": "ready"}, status_code=HTTP_200_OK)


async def release_connection(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond asyncpg's own rollback of an open transaction.

    asyncpg's default reset (``RESET ALL``, ``UNLISTEN *``, …) costs a round trip per
    request; nothing here sets session state (the tenant context is transaction-local,
    as it must be behind pgbouncer in transaction mode, where no reset runs at all).
    """


def create_app(
    settings: Settings | None = None, extra_api_handlers: Sequence[ControllerRouterHandler] = ()
) -> Litestar:
    """Build the application for ``settings`` (default: from the environment).

    ``extra_api_handlers`` are mounted under ``/api/{tenant_id}`` with the same guard,
    transaction and dependencies as the API's own routes (tests use it).
    """
    settings = settings or Settings.from_env()
    settings.validate()
    engine = get_engine()
    pool_options: dict[str, Any] = {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "reset": release_connection,
        "server_settings": {
            "application_name": "chat-sessions-api",
            "statement_timeout": str(settings.statement_timeout_ms),
        },
        "statement_cache_size": settings.statement_cache_size,
    }
    replica = (
        Replica(settings.app_read_database_url, settings.replica_max_lag_ms, pool_options)
        if settings.app_read_database_url
        else None
    )
    limits = Limits(
        acquire_timeout=settings.pool_timeout,
        statement_timeout_ms=settings.statement_timeout_ms,
        idle_in_transaction_timeout_ms=settings.idle_in_transaction_timeout_ms,
        tenant_max=settings.tenant_max,
    )
    shares = TenantShares(settings.tenant_max)  # the requests' and the live updates' reads share them
    events = Hub(settings, limits, shares)

    def warn_in_development() -> None:
        if warning := settings.development_warning:
            log.warning(warning)

    @asynccontextmanager
    async def database(_: Litestar) -> AsyncIterator[None]:
        await engine.start_connection_pool(dsn=settings.runtime_database_url, **pool_options)
        try:
            # In a transaction, so that behind pgbouncer (transaction mode) it stays on one server connection.
            async with engine.connections.acquire() as connection, connection.transaction():
                await check_runtime_role(connection)
            if replica is not None:
                await replica.start(engine.connections)  # the same self-check on the replica's role
            engine.require_transaction = True
            await events.start()
            yield
        finally:
            await events.stop()
            engine.require_transaction = False
            if replica is not None:
                await replica.stop()
            await engine.close_connection_pool()

    api = Router(
        # ``:str``: a malformed tenant id must reach the guard (401 first, then 400), not fail routing (404).
        path="/api/{tenant_id:str}",
        route_handlers=[
            SessionController,
            MessageController,
            AgentController,
            MeController,
            UserController,
            EventController,
            PrivacyController,
            *extra_api_handlers,
        ],
        guards=[tenant_guard, plain_values],
        dependencies={"user": Provide(provide_user, sync_to_thread=False)},
        # Read your writes (documented here, handled by the guard and the transaction middleware).
        parameters={
            "read_after": HeaderParameter(
                annotation=str,
                name=READ_AFTER_HEADER,
                default=None,
                pattern=LSN_PATTERN,
                description=READ_AFTER_IN,
            )
        },
        response_headers=[ResponseHeader(name=READ_AFTER_HEADER, description=READ_AFTER_OUT, documentation_only=True)],
        middleware=[DefineMiddleware(TransactionMiddleware, limits=limits, shares=shares, replica=replica)],
        security=[{"BearerToken": []}],
    )
    return Litestar(
        plugins=[ClosedStructSchemaPlugin(), IdSchemaPlugin()],
        request_class=StrictRequest,
        route_handlers=[api, health, ready, *web_handlers(settings)],
        lifespan=[database],
        on_startup=[warn_in_development],
        state=State({"settings": settings, "events": events}),
        exception_handlers={
            ValidationException: validation_error,
            HTTP_500_INTERNAL_SERVER_ERROR: internal_error,
            **dict.fromkeys(DATABASE_DOWN_ERRORS + DRIVER_ERRORS + RECOVERY_CONFLICT_ERRORS, database_error_response),
        },
        cors_config=(
            CORSConfig(allow_origins=list(settings.cors_origins), expose_headers=[READ_AFTER_HEADER])
            if settings.cors_origins
            else None
        ),
        openapi_config=OpenAPIConfig(
            title="Chat Sessions API",
            version="1.0.0",
            description="Multi-tenant chat sessions; tenant isolation enforced by PostgreSQL row-level security.",
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            render_plugins=[SwaggerUIPage()],
            openapi_router=docs_router(),
        ),
        debug=False,
    )
