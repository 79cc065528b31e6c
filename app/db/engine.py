"""The Piccolo engine of the application, and the rule that API queries run in the request's transaction."""

from __future__ import annotations

from typing import Any

import asyncpg
from piccolo.engine.postgres import PostgresEngine
from piccolo.querystring import QueryString


class OutsideTransactionError(RuntimeError):
    """A query ran without the request's transaction: it would have seen no tenant context."""


class TenantEngine(PostgresEngine):
    """A ``PostgresEngine`` that, once ``require_transaction`` is on, refuses queries outside a transaction.

    The API server turns it on: a query outside the request's transaction would run on
    another pooled connection without the tenant context and silently return nothing,
    so it fails loudly (500) instead.
    """

    require_transaction = False

    async def check_version(self) -> None:
        """Not at construction: Piccolo would connect when ``piccolo_conf`` is imported, with libpq's
        defaults (the operating-system user) while no DSN is configured yet."""

    async def run_querystring(self, querystring: QueryString, in_pool: bool = True) -> Any:
        self._check_transaction()
        lock = getattr(self.current_transaction.get(), "lock", None)
        if lock is None:
            return await super().run_querystring(querystring, in_pool=in_pool)
        # Dependencies resolved concurrently share the request's one connection: take turns.
        async with lock:
            return await super().run_querystring(querystring, in_pool=in_pool)

    async def run_ddl(self, ddl: str, in_pool: bool = True) -> Any:
        self._check_transaction()
        return await super().run_ddl(ddl, in_pool=in_pool)

    @property
    def connections(self) -> asyncpg.Pool:
        """The running connection pool (raises when it was not started)."""
        if self.pool is None:
            raise RuntimeError("the connection pool is not running")
        return self.pool

    def _check_transaction(self) -> None:
        if self.require_transaction and self.current_transaction.get() is None:
            raise OutsideTransactionError("query outside the request's transaction")


def get_engine() -> TenantEngine:
    """The engine configured in ``piccolo_conf.py``."""
    from piccolo_conf import DB

    return DB


def use_database(dsn: str) -> TenantEngine:
    """Point the engine at ``dsn`` (migrations, seeding, audits)."""
    engine = get_engine()
    engine.config = {"dsn": dsn}
    return engine
