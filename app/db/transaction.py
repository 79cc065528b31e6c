"""The request's database transaction: begun by the guard, finished by a middleware.

One transaction carries all of a request's queries, and the tenant context is set in it
transaction-local (``app.db.context.set_context``), so it ends with the transaction and a
pooled connection never carries one request's context into another's.

``TransactionMiddleware`` wraps every ``/api`` route. It first reads the whole request
body (a client that is still sending holds no pooled connection), then puts a
``RequestTransaction`` in the ASGI scope. The guard, once the token is valid, calls
``begin()`` on it: a place in the tenant's share of the pool, a pooled connection within
a bounded wait, BEGIN with the request's time limits, the context. When the response
starts the middleware commits (status < 400) or rolls back (anything else), and it always
gives the connection and the place back, whatever the handler did. Everything runs in the
request's own task, so Piccolo's context variable sees the transaction in the guard, in
the handler and in any dependency task spawned from them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

import asyncpg
import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send
from piccolo.engine.postgres import PostgresTransaction

from app.db.context import set_context
from app.db.engine import TenantEngine, get_engine

log = logging.getLogger(__name__)

SCOPE_KEY = "chat.transaction"
RETRY_AFTER_SECONDS = "1"
MAX_BODY_BYTES = 1 << 20  # the largest valid body (a message of 32,768 escaped characters) is ~200 KB


class DatabaseUnavailableError(HTTPException):
    """No pool connection within the bounded wait, or the database does not answer: 503."""

    status_code = 503

    def __init__(self, detail: str = "database unavailable, retry shortly") -> None:
        super().__init__(detail=detail, headers={"Retry-After": RETRY_AFTER_SECONDS})


class DatabaseTimeoutError(DatabaseUnavailableError):
    """A statement ran past the statement timeout (or was cancelled by an operator): 503."""

    def __init__(self) -> None:
        super().__init__(detail="the database did not answer in time, retry shortly")


class TenantBusyError(DatabaseUnavailableError):
    """The tenant already holds its whole share of the pool for longer than the bounded wait: 503."""

    def __init__(self) -> None:
        super().__init__(detail="too many requests of this tenant at once, retry shortly")


# Errors that mean "the database is slow, restarting or gone", not "this request is wrong".
# QueryCanceledError (statement timeout) is one of the operator-intervention class (57).
DATABASE_DOWN_ERRORS = (
    asyncpg.OperatorInterventionError,
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError (closed mid-query)
    asyncpg.exceptions.InternalClientError,  # protocol out of step: the server vanished mid-exchange
    ConnectionError,  # refused, reset, broken pipe
    TimeoutError,
)
# Driver errors that mean the same only when the request's connection is gone (otherwise a bug).
DRIVER_ERRORS = (asyncpg.InterfaceError,)
# What connecting and BEGIN can raise when the pool or the server is not there.
_BEGIN_ERRORS = (*DATABASE_DOWN_ERRORS, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def database_error_response(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """Exception handler: a slow, restarting or unreachable database is a 503 with Retry-After.

    The body is the usual ``{status_code, detail}``: no SQL text, no driver message. A
    driver error on a connection that is still open is a bug: 500.
    """
    holder = cast("RequestTransaction | None", request.scope.get(SCOPE_KEY))
    if not isinstance(error, DATABASE_DOWN_ERRORS) and not (holder and holder.connection_lost):
        log.error("database driver error in %s %s", request.method, request.url.path, exc_info=error)
        return Response({"status_code": 500, "detail": "Internal Server Error"}, status_code=500)
    log.warning("database error in %s %s: %r", request.method, request.url.path, error)
    answer = DatabaseTimeoutError() if isinstance(error, asyncpg.QueryCanceledError) else DatabaseUnavailableError()
    return Response(
        {"status_code": answer.status_code, "detail": answer.detail},
        status_code=answer.status_code,
        headers=answer.headers,
        media_type=MediaType.JSON,
    )


def _is_lost(connection: asyncpg.Connection) -> bool:
    """True when ``connection`` is closed, or already taken back by the pool because it died."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        return True


@dataclass(frozen=True)
class Limits:
    """How long a request may wait for, and hold, the database."""

    acquire_timeout: float  # seconds: for the tenant's share and a pooled connection, together
    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    tenant_max: int  # pooled connections one tenant may hold at once in this process

    @property
    def begin_sql(self) -> str:
        """BEGIN with the limits, transaction-local (they hold behind a pooler that drops start-up settings)."""
        return (
            f"BEGIN; SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}; "
            f"SET LOCAL idle_in_transaction_session_timeout = {int(self.idle_in_transaction_timeout_ms)}"
        )


class TenantShares:
    """Each tenant's share of this process's pool: at most ``limit`` connections at once per tenant.

    Beyond it a tenant's request waits (bounded by the caller) while other tenants are served.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[UUID, asyncio.Semaphore] = {}

    async def acquire(self, tenant_id: UUID) -> None:
        """Take a place in ``tenant_id``'s share, waiting while the tenant holds all of them."""
        await self._slots.setdefault(tenant_id, asyncio.Semaphore(self.limit)).acquire()

    def release(self, tenant_id: UUID) -> None:
        """Give a place back."""
        self._slots[tenant_id].release()


class RequestTransaction:
    """The transaction of one request: begun by ``begin()``, ended by ``finish()``.

    Piccolo runs a query on ``connection`` while this object is the engine's current
    transaction; ``lock`` makes dependencies resolved concurrently take turns on it.
    """

    def __init__(self, engine: TenantEngine, limits: Limits, shares: TenantShares) -> None:
        self.engine = engine
        self.limits = limits
        self.shares = shares
        self.lock = asyncio.Lock()
        self.connection: asyncpg.Connection | None = None
        self._tenant: UUID | None = None
        self._current: contextvars.Token[Any] | None = None

    @property
    def is_open(self) -> bool:
        """True between ``begin()`` and ``finish()`` (also when ``begin()`` failed half-way)."""
        return self._tenant is not None

    @property
    def connection_lost(self) -> bool:
        """True when the request's connection died (server stopped or restarted, network cut)."""
        return self.connection is not None and _is_lost(self.connection)

    async def begin(self, tenant_id: UUID, user_id: UUID | None) -> asyncpg.Record | None:
        """Open the transaction with the tenant context; return the user's row (None: not a user of the tenant).

        Waits at most ``acquire_timeout`` for a place in the tenant's share and a pooled
        connection together: ``TenantBusyError`` or ``DatabaseUnavailableError`` (503) after.
        """
        deadline = asyncio.get_running_loop().time() + self.limits.acquire_timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self.shares.acquire(tenant_id)
        except TimeoutError as error:
            log.warning("tenant %s holds its whole share of the pool (%d)", tenant_id, self.limits.tenant_max)
            raise TenantBusyError from error
        self._tenant = tenant_id
        try:
            async with asyncio.timeout_at(deadline):
                self.connection = await self.engine.connections.acquire()
            # Piccolo reads only ``.connection`` of the current transaction.
            self._current = self.engine.current_transaction.set(cast("PostgresTransaction", self))
            await self.connection.execute(self.limits.begin_sql)
            return await set_context(self.connection, tenant_id, user_id)
        except _BEGIN_ERRORS as error:
            # Pool exhausted, database down or restarting, or a pooled connection that died.
            log.warning("no database connection for the request: %r", error)
            raise DatabaseUnavailableError from error

    async def finish(self, commit: bool) -> None:
        """Commit or roll back, give the connection and the tenant's place back.

        A failed commit raises (``DatabaseUnavailableError`` when the connection was lost);
        a failed rollback is logged (the connection is released or terminated either way).
        """
        connection, self.connection = self.connection, None
        tenant, self._tenant = self._tenant, None
        assert tenant is not None, "finish() without begin()"
        try:
            if connection is not None:
                await self._end(connection, commit)
        finally:
            if self._current is not None:
                self.engine.current_transaction.reset(self._current)
                self._current = None
            self.shares.release(tenant)

    async def _end(self, connection: asyncpg.Connection, commit: bool) -> None:
        try:
            await connection.execute("COMMIT" if commit else "ROLLBACK")
        except Exception as error:
            # Asked before the release below: did the connection die under COMMIT/ROLLBACK?
            lost = isinstance(error, DATABASE_DOWN_ERRORS) or _is_lost(connection)
            if not commit:
                log.warning("rollback failed: %r", error)
            elif lost:
                raise DatabaseUnavailableError from error
            else:
                raise
        finally:
            try:
                # Resets the connection (ROLLBACK if still needed) or terminates a broken one.
                await self.engine.connections.release(connection)
            except Exception as error:  # noqa: BLE001  # pragma: no cover - the server dying between COMMIT and reset
                # asyncpg terminated the connection; the outcome of COMMIT above stands.
                log.warning("pooled connection terminated on release: %r", error)


def get_request_transaction(scope: Scope) -> RequestTransaction:
    """The request's transaction, put in the scope by ``TransactionMiddleware``."""
    return cast(RequestTransaction, scope[SCOPE_KEY])  # type: ignore[literal-required]


class BodyTooLargeError(Exception):
    """The request body is larger than ``MAX_BODY_BYTES``."""


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY_BYTES) -> Receive | None:
    """Read the whole request body now; return a ``receive`` that replays it (None: the client left).

    Raises ``BodyTooLargeError`` past ``limit`` bytes (announced or sent).
    """
    announced = dict(scope["headers"]).get(b"content-length", b"0")
    if announced.isdigit() and int(announced) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        size += len(message["body"])
        if size > limit:
            raise BodyTooLargeError
        chunks.append(message["body"])
        if not message.get("more_body", False):
            break
    body: HTTPRequestEvent | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def replay() -> ReceiveMessage:
        nonlocal body
        if body is None:
            return await receive()
        message, body = body, None
        return message

    return replay


class TransactionMiddleware:
    """Owns the lifetime of each request's transaction (see the module docstring)."""

    def __init__(self, app: ASGIApp, limits: Limits, shares: TenantShares) -> None:
        self.app = app
        self.engine = get_engine()
        self.limits = limits
        self.shares = shares

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            replay = await read_body(scope, receive)
        except BodyTooLargeError:
            await _send_error(send, 413, f"request body larger than {MAX_BODY_BYTES} bytes")
            return
        if replay is None:
            return
        holder = RequestTransaction(self.engine, self.limits, self.shares)
        scope[SCOPE_KEY] = holder  # type: ignore[literal-required]
        replaced = False

        async def send_after_finishing(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and holder.is_open:
                try:
                    await holder.finish(commit=message["status"] < 400)
                except DatabaseUnavailableError as error:
                    # The database went away before the commit: a 503 like any other outage.
                    log.warning("commit failed, database connection lost: %r", error.__cause__)
                    replaced = True
                    await _send_error(send, 503, error.detail, RETRY_AFTER_SECONDS)
                    return
                except Exception:
                    log.exception("commit failed")
                    replaced = True
                    await _send_error(send, 500, "the change could not be saved")
                    return
            await send(message)

        try:
            await self.app(scope, replay, send_after_finishing)
        finally:
            if holder.is_open:
                await holder.finish(commit=False)


async def _send_error(send: Send, status: int, detail: str, retry_after: str | None = None) -> None:
    body = msgspec.json.encode({"status_code": status, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
