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

With a read replica (``app.db.replica``), ``begin()`` runs a read there in a READ ONLY
transaction when the replica is usable and has replayed the ``X-Read-After`` position the
client sent, else on the primary; a committed write's response carries the primary's WAL
position after COMMIT as ``X-Read-After``. A read that the replica failed (it stopped,
restarted or went away under the read) is served once more, on the primary, before
anything was sent.
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
from litestar.types import (
    ASGIApp,
    HTTPRequestEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)
from litestar.utils.scope.state import ScopeState
from piccolo.engine.postgres import PostgresTransaction

from app.db.context import set_context
from app.db.engine import TenantEngine, get_engine
from app.db.replica import POSITION_SQL, REACHED_SQL, READ_AFTER_HEADER, Replica, format_lsn, must_write

log = logging.getLogger(__name__)

SCOPE_KEY = "chat.transaction"
RETRY_AFTER_SECONDS = "1"
READ_AFTER_BYTES = READ_AFTER_HEADER.lower().encode()
MAX_BODY_BYTES = 1 << 20  # the largest valid body (a message of 32,768 escaped characters) is ~200 KB
# Route marker (``opt``) of a response streamed from the request's transaction (an export's cursor):
# the transaction ends with the body, or when the client leaves, not when the response starts.
STREAMS = "streams_from_transaction"


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
# What a hot standby raises when it cancels a read that holds its replay back ("conflict with recovery",
# 40001/40P01); on the primary (READ COMMITTED, no retries) these are bugs: 500.
RECOVERY_CONFLICT_ERRORS = (asyncpg.TransactionRollbackError,)
# What connecting, BEGIN and the queries around it can raise when the pool or the server is not there.
_BEGIN_ERRORS = (*DATABASE_DOWN_ERRORS, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def database_error_response(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """Exception handler: a slow, restarting or unreachable database is a 503 with Retry-After.

    The body is the usual ``{status_code, detail}``: no SQL text, no driver message. A
    driver error on a connection that is still open is a bug: 500. A read the replica failed
    (down, or cancelled by a conflict with recovery) is marked to be served again by the primary.
    """
    holder = cast("RequestTransaction | None", request.scope.get(SCOPE_KEY))
    on_replica = bool(holder and holder.on_replica)
    down = isinstance(error, DATABASE_DOWN_ERRORS) or bool(holder and holder.connection_lost)
    if not down and not (on_replica and isinstance(error, RECOVERY_CONFLICT_ERRORS)):
        log.error("database driver error in %s %s", request.method, request.url.path, exc_info=error)
        return Response({"status_code": 500, "detail": "Internal Server Error"}, status_code=500)
    log.warning("database error in %s %s: %r", request.method, request.url.path, error)
    timed_out = isinstance(error, asyncpg.QueryCanceledError)
    if holder and on_replica and not timed_out:
        holder.replica_failed = True  # the replica went away or cancelled the read: the middleware serves it again
    answer = DatabaseTimeoutError() if timed_out else DatabaseUnavailableError()
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

    @property
    def begin_read_only_sql(self) -> str:
        """``begin_sql`` for a read on the replica: ``BEGIN READ ONLY`` with the same limits."""
        return self.begin_sql.replace("BEGIN;", "BEGIN READ ONLY;", 1)


class TenantShares:
    """Each tenant's share of this process's pool: at most ``limit`` connections at once per tenant.

    Beyond it a tenant's request waits (bounded by the caller) while other tenants are served.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[UUID, asyncio.Semaphore] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> TenantShares:
        # Litestar deep-copies a router with its middleware's arguments: the process's shares are one, not copies.
        return self

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

    def __init__(
        self,
        engine: TenantEngine,
        limits: Limits,
        shares: TenantShares,
        scope: Scope | None = None,
        replica: Replica | None = None,
    ) -> None:
        self.engine = engine
        self.limits = limits
        self.shares = shares
        self.scope = scope
        self.replica = replica
        self.lock = asyncio.Lock()
        self.connection: asyncpg.Connection | None = None
        self.writes = False  # a write (not a GET) on the primary: its answer carries ``X-Read-After``
        self.replica_failed = False  # the replica stopped, restarted or went away under this read
        self._pool: asyncpg.Pool | None = None  # where ``connection`` came from
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

    @property
    def on_replica(self) -> bool:
        """True while the transaction runs on the read replica."""
        return self.replica is not None and self._pool is not None and self._pool is self.replica.connections

    async def begin(
        self, tenant_id: UUID, user_id: UUID | None, read_after: int | None = None
    ) -> asyncpg.Record | None:
        """Open the transaction with the tenant context; return the user's row (None: not a user of the tenant).

        A read runs on the read replica when it is usable and has replayed ``read_after`` (the
        client's ``X-Read-After``), in a READ ONLY transaction; everything else on the primary.
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
        # Piccolo reads only ``.connection`` of the current transaction.
        self._current = self.engine.current_transaction.set(cast("PostgresTransaction", self))
        replica, scope = self.replica, self.scope
        if replica is not None and scope is not None and replica.usable and not must_write(scope):
            row = await self._begin_on_replica(replica, scope, deadline, tenant_id, user_id, read_after)
            if row is not None:
                return row
        try:
            async with asyncio.timeout_at(deadline):
                self.connection = await self.engine.connections.acquire()
            self._pool = self.engine.connections
            await self.connection.execute(self.limits.begin_sql)
            row = await set_context(self.connection, tenant_id, user_id)
        except _BEGIN_ERRORS as error:
            # Pool exhausted, database down or restarting, or a pooled connection that died.
            log.warning("no database connection for the request: %r", error)
            raise DatabaseUnavailableError from error
        # Without a request (the live updates' reads) there is no write to read after; nor after a GET that
        # writes (an admin's read recorded in access_log): no WAL position, no header, no extra round trip.
        self.writes = self.scope is not None and self.scope.get("method") != "GET"
        return row

    async def _begin_on_replica(
        self,
        replica: Replica,
        scope: Scope,
        deadline: float,
        tenant_id: UUID,
        user_id: UUID | None,
        read_after: int | None,
    ) -> asyncpg.Record | None:
        """The read's transaction on the replica: the user's row, or None when the primary must serve the request.

        The primary serves it when the replica has not replayed ``read_after``, does not know
        the user (yet), finds that this caller's read writes, or gives no connection: the
        replica gets at most half the wait for one, so the primary always has the other half.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self.limits.acquire_timeout / 2)):
                self.connection = await replica.connections.acquire()
        except TimeoutError:
            return None  # every replica connection is busy (or connecting hangs: the health check will tell)
        except _BEGIN_ERRORS as error:
            replica.skip("unreachable", repr(error))
            return None
        self._pool = replica.connections
        # A replica connection that dies from here on raises: the middleware serves the read again on the primary.
        await self.connection.execute(self.limits.begin_read_only_sql)
        if read_after is None or await self.connection.fetchval(REACHED_SQL, format_lsn(read_after)):
            row = await set_context(self.connection, tenant_id, user_id)
            if row is not None and not must_write(scope, row["role"]):
                return row
        connection, self.connection = self.connection, None
        await self._end(connection, commit=False)
        return None

    async def finish(self, commit: bool) -> int | None:
        """Commit or roll back, give the connection and the tenant's place back.

        Returns the primary's WAL position after a committed write (for ``X-Read-After``),
        else None. A failed commit raises (``DatabaseUnavailableError`` when the connection
        was lost); a failed rollback is logged (the connection is released or terminated
        either way).
        """
        connection, self.connection = self.connection, None
        tenant, self._tenant = self._tenant, None
        current, self._current = self._current, None
        assert tenant is not None, "finish() without begin()"
        assert current is not None, "finish() without begin()"
        try:
            if connection is not None:
                return await self._end(connection, commit)
            return None
        finally:
            self.engine.current_transaction.reset(current)
            self.shares.release(tenant)

    async def _end(self, connection: asyncpg.Connection, commit: bool) -> int | None:
        position: int | None = None
        try:
            await connection.execute("COMMIT" if commit else "ROLLBACK")
            if commit and self.writes:
                position = await self._position(connection)
        except Exception as error:
            # Asked before the release below: did the connection die under COMMIT/ROLLBACK?
            lost = isinstance(error, DATABASE_DOWN_ERRORS) or _is_lost(connection)
            if not commit:
                log.warning("rollback failed: %r", error)
            elif self.on_replica:
                # A read on the replica has nothing to save: its answer stands.
                log.warning("the replica failed at the end of a read, answered anyway: %r", error)
            elif lost:
                raise DatabaseUnavailableError from error
            else:
                raise
        finally:
            try:
                # Resets the connection (ROLLBACK if still needed) or terminates a broken one.
                await cast(asyncpg.Pool, self._pool).release(connection)
            except Exception as error:  # noqa: BLE001  # pragma: no cover - the server dying between COMMIT and reset
                # asyncpg terminated the connection; the outcome of COMMIT above stands.
                log.warning("pooled connection terminated on release: %r", error)
        return position

    @staticmethod
    async def _position(connection: asyncpg.Connection) -> int | None:
        """The primary's WAL insert position, read after COMMIT: at or past the end of the commit record."""
        try:
            return cast(int, await connection.fetchval(POSITION_SQL))
        except _BEGIN_ERRORS as error:  # the write is committed; only the header is lost
            log.warning("committed, but the WAL position for X-Read-After could not be read: %r", error)
            return None


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

    def __init__(self, app: ASGIApp, limits: Limits, shares: TenantShares, replica: Replica | None = None) -> None:
        self.app = app
        self.engine = get_engine()
        self.limits = limits
        self.shares = shares
        self.replica = replica

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            replay = await read_body(scope, receive)
        except BodyTooLargeError:
            await _send_error(send, 413, f"request body larger than {MAX_BODY_BYTES} bytes")
            return
        if replay is None:
            return
        if await self._serve(scope, replay, send, self.replica):
            # The replica failed this read before anything was sent: serve it again, on the primary.
            ScopeState.from_scope(scope).response_started = False
            await self._serve(scope, replay, send, None)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, replica: Replica | None) -> bool:
        """Run the request in its transaction; True when nothing was sent because the replica failed the read."""
        holder = RequestTransaction(self.engine, self.limits, self.shares, scope, replica)
        scope[SCOPE_KEY] = holder  # type: ignore[literal-required]
        replaced = again = streaming = False

        async def send_after_finishing(message: Message) -> None:
            nonlocal replaced, again, streaming
            if replaced:
                return
            if message["type"] == "http.response.start" and holder.is_open and _streams(scope, message):
                streaming = True  # finished below, in this task, once the body is sent or the client left
            elif message["type"] == "http.response.start" and holder.is_open:
                if replica is not None and holder.replica_failed:
                    replica.skip("failed under a read")
                    replaced = again = True
                    await holder.finish(commit=False)
                    return
                try:
                    position = await holder.finish(commit=message["status"] < 400)
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
                if position is not None:
                    headers = [*message.get("headers", ()), (READ_AFTER_BYTES, format_lsn(position).encode())]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_after_finishing)
        finally:
            if holder.is_open and streaming:
                # The body was sent, or the client left, or the stream failed: what it recorded stands.
                await _finish_stream(holder)
            elif holder.is_open:
                await holder.finish(commit=False)
        return again


async def _finish_stream(holder: RequestTransaction) -> None:
    """Commit a streamed response's transaction; its status is sent already, so a failure is only logged."""
    try:
        await holder.finish(commit=True)
    except Exception:
        log.exception("a streamed response's transaction did not commit")


def _streams(scope: Scope, start: HTTPResponseStartEvent) -> bool:
    """True when a successful response of a ``STREAMS`` route starts: its body is read in the transaction."""
    handler = scope.get("route_handler")
    return start["status"] < 400 and handler is not None and bool(handler.opt.get(STREAMS))


async def _send_error(send: Send, status: int, detail: str, retry_after: str | None = None) -> None:
    body = msgspec.json.encode({"status_code": status, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
