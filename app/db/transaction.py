"""The request's database transaction: opened by the guard, finished by a middleware.

One transaction carries all of a request's queries, and the tenant context is set in it
with ``set_config(..., true)`` (transaction-local), so it ends with the transaction and a
pooled connection never carries one request's context into another's.

``TransactionMiddleware`` wraps every ``/api`` route. It puts a ``RequestTransaction`` in
the ASGI scope; the guard, once the token is valid, calls ``begin()`` on it (bounded wait
for a pool connection, then BEGIN and the context). When the response starts the
middleware commits (status < 400) or rolls back (anything else), and it always returns
the connection to the pool, whatever the handler did. Everything runs in the request's
own task, so Piccolo's context variable sees the transaction in the guard, in the
handler and in any dependency task spawned from them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast
from uuid import UUID

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from piccolo.engine.postgres import PostgresTransaction

from app.db.engine import TenantEngine, get_engine

log = logging.getLogger(__name__)

SCOPE_KEY = "chat.transaction"
RETRY_AFTER_SECONDS = "1"
# The request's tenant context, transaction-local (third argument true).
# The request's context and statement timeout, all transaction-local: $1 tenant, $2 user, $3 milliseconds.
SET_CONTEXT_SQL = (
    "SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true), "
    "set_config('statement_timeout', $3, true)"
)


class DatabaseUnavailableError(HTTPException):
    """No pool connection within the bounded wait, or the database does not answer: 503."""

    status_code = 503

    def __init__(self, detail: str = "database unavailable, retry shortly") -> None:
        super().__init__(detail=detail, headers={"Retry-After": RETRY_AFTER_SECONDS})


class DatabaseTimeoutError(DatabaseUnavailableError):
    """A statement ran past the statement timeout (or was cancelled by an operator): 503."""

    def __init__(self) -> None:
        super().__init__(detail="the database did not answer in time, retry shortly")


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


class _PooledTransaction(PostgresTransaction):
    """Piccolo's transaction, opened with a bounded wait for the pool and always released.

    Piccolo's own ``__aenter__``/``__aexit__`` would leak the connection when BEGIN or
    COMMIT fails; these two methods release it in every case.
    """

    engine: TenantEngine
    __slots__ = ("lock",)

    async def open(self, acquire_timeout: float) -> None:
        self.lock = asyncio.Lock()
        pool = self.engine.connections
        self.connection = await pool.acquire(timeout=acquire_timeout)
        try:
            self.transaction = self.connection.transaction()
            await self.transaction.start()
        except BaseException:  # pragma: no cover - a connection dying between acquire and BEGIN can't be forced
            await pool.release(self.connection)
            raise
        self.context = self.engine.current_transaction.set(self)

    async def close(self, commit: bool) -> None:
        try:
            await (self.transaction.commit() if commit else self.transaction.rollback())
        except Exception as error:
            # Asked before the release below: did the connection die under COMMIT/ROLLBACK?
            if isinstance(error, DATABASE_DOWN_ERRORS) or _is_lost(self.connection):
                raise DatabaseUnavailableError from error
            raise
        finally:
            try:
                # Resets the connection (ROLLBACK if still needed) or terminates a broken one.
                await self.engine.connections.release(self.connection)
            except Exception as error:  # noqa: BLE001  # pragma: no cover - the server dying between COMMIT and reset
                # asyncpg terminated the connection; the outcome of COMMIT above stands.
                log.warning("pooled connection terminated on release: %r", error)
            finally:
                self.engine.current_transaction.reset(self.context)


class RequestTransaction:
    """The (lazily opened) transaction of one request."""

    def __init__(self, engine: TenantEngine, acquire_timeout: float, statement_timeout_ms: int) -> None:
        self.engine = engine
        self.acquire_timeout = acquire_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self._transaction: _PooledTransaction | None = None

    @property
    def is_open(self) -> bool:
        """True between ``begin()`` and the end of the request."""
        return self._transaction is not None

    @property
    def connection_lost(self) -> bool:
        """True when the request's connection died (server stopped or restarted, network cut)."""
        return self._transaction is not None and _is_lost(self._transaction.connection)

    async def begin(self, tenant_id: UUID, user_id: UUID) -> None:
        """Open the transaction and set ``app.tenant_id`` / ``app.user_id`` in it, transaction-local.

        The statement timeout is set transaction-local too, so it holds even behind a pooler
        (pgbouncer) that drops the pool's start-up ``statement_timeout`` setting.
        """
        transaction = _PooledTransaction(self.engine, allow_nested=False)
        try:
            await transaction.open(self.acquire_timeout)
            self._transaction = transaction
            await cast(asyncpg.Connection, transaction.connection).execute(
                SET_CONTEXT_SQL,
                str(tenant_id),
                str(user_id),
                str(self.statement_timeout_ms),
            )
        except (*DATABASE_DOWN_ERRORS, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            # Pool exhausted, database down or restarting, or a pooled connection that died.
            log.warning("no database connection for the request: %r", error)
            raise DatabaseUnavailableError from error

    async def finish(self, commit: bool) -> None:
        """Commit or roll back, return the connection to the pool, forget the transaction.

        A failed commit raises (``DatabaseUnavailableError`` when the connection was lost);
        a failed rollback is logged (the connection is released or terminated either way).
        """
        transaction, self._transaction = self._transaction, None
        assert transaction is not None, "finish() without begin()"
        if commit:
            await transaction.close(commit=True)
            return
        try:
            await transaction.close(commit=False)
        except Exception:
            log.exception("rollback failed")


def get_request_transaction(scope: Scope) -> RequestTransaction:
    """The request's transaction holder, put in the scope by ``TransactionMiddleware``."""
    return cast(RequestTransaction, scope[SCOPE_KEY])  # type: ignore[literal-required]


class TransactionMiddleware:
    """Owns the lifetime of each request's transaction (see the module docstring)."""

    def __init__(self, app: ASGIApp, acquire_timeout: float, statement_timeout_ms: int) -> None:
        self.app = app
        self.engine = get_engine()
        self.acquire_timeout = acquire_timeout
        self.statement_timeout_ms = statement_timeout_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        holder = RequestTransaction(self.engine, self.acquire_timeout, self.statement_timeout_ms)
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
            await self.app(scope, receive, send_after_finishing)
        finally:
            if holder.is_open:
                await holder.finish(commit=False)


async def _send_error(send: Send, status: int, detail: str, retry_after: str | None = None) -> None:
    import msgspec

    body = msgspec.json.encode({"status_code": status, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
