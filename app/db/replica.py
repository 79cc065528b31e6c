"""The read replica (``APP_READ_DATABASE_URL``): the routing rule, the replica's pool and its health.

A hot standby of the primary (PostgreSQL streaming replication), reached as the same
runtime role, serves the reads under ``/api`` in ``BEGIN READ ONLY`` transactions with
the same transaction-local context and the same policies; ``RequestTransaction.begin``
asks ``must_write`` and ``Replica.usable`` before it picks the server.

Health is watched in the background, once a second per process, never per request: the
primary's WAL insert position is sampled, and the replica's lag is how long ago the
primary was at the oldest sampled position the replica has not replayed yet (right also
when the primary is idle or the replica stopped receiving WAL; resolution: the interval).
A replica that is unreachable, is not a standby of this primary, or lags more than
``DB_REPLICA_MAX_LAG_MS`` is skipped, and used again once a check finds it healthy; each
change is one log line with the reason and the lag. Whenever the replica is reached after
an outage (and at start-up) its role goes through the primary's self-check
(``check_runtime_role``) and its system identifier must be the primary's.

Read-your-writes: a committed write's response carries ``X-Read-After``, the primary's WAL
insert position after COMMIT (``POSITION_SQL``, ``format_lsn``); a read that sends it back
is served by the replica only if ``REACHED_SQL`` is true in the read's own transaction.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from typing import Any

import asyncpg
from litestar.types import Scope

from app.db.selfcheck import UnsafeRoleError, check_runtime_role

log = logging.getLogger(__name__)

READ_AFTER_HEADER = "X-Read-After"
# Route marker (``opt``) of a GET whose reads write: ``True`` for every caller, or a role ("admin").
READS_WRITE = "reads_write"
CHECK_SECONDS = 1.0  # between two health checks
CHECK_TIMEOUT = 2.0  # for each side of one check (a connection and a query)

POSITION_SQL = "SELECT pg_current_wal_insert_lsn()"
REPLAYED_SQL = "SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn() AS replayed"
# The position goes as text: asyncpg encodes pg_lsn from a signed 64-bit integer, LSNs are unsigned.
REACHED_SQL = "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)"
SYSTEM_SQL = "SELECT system_identifier FROM pg_control_system()"

# What a check (or a request's attempt) meets when the replica is down, restarting or unreachable.
# InternalClientError: the protocol out of step because the server vanished mid-exchange.
UNREACHABLE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

LSN_PATTERN = "^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$"  # also in the OpenAPI document
_LSN = re.compile(LSN_PATTERN.strip("^$"))


def must_write(scope: Scope, role: str | None = None) -> bool:
    """The routing rule: True when the request's transaction must run on the primary, read-write.

    Every method but ``GET`` writes. A ``GET`` only reads, and may run on the replica, unless
    its route says its reads write too: ``opt={READS_WRITE: True}`` for every caller, or
    ``opt={READS_WRITE: "admin"}`` for the callers of that role (an admin's read that
    ``access_log`` records). ``begin()`` asks before the context is set (``role`` None: a
    role's marker does not count yet) and again with the role the context read.
    """
    if scope.get("method") != "GET":
        return True
    handler = scope.get("route_handler")
    marker = handler.opt.get(READS_WRITE) if handler is not None else None
    return marker is True or (role is not None and marker == role)


def parse_lsn(text: str) -> int:
    """A WAL position as PostgreSQL prints it (``16/B374D848``: two hexadecimal numbers) → an integer.

    Raises ``ValueError`` for anything else.
    """
    match = _LSN.fullmatch(text)
    if match is None:
        raise ValueError(f"not a WAL position: {text!r}")
    return int(match[1], 16) << 32 | int(match[2], 16)


def format_lsn(position: int) -> str:
    """An integer WAL position written as PostgreSQL prints it (``16/B374D848``)."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


class Replica:
    """The read replica of one server process: a pool, and whether it may serve reads now (``usable``)."""

    def __init__(self, dsn: str, max_lag_ms: int, pool_options: dict[str, Any], interval: float | None = None):
        self.dsn = dsn
        self.max_lag_ms = max_lag_ms
        self.interval = interval or CHECK_SECONDS
        self.usable = False
        self.reason = "not checked yet"
        self.lag_ms: float | None = None
        self._pool_options = pool_options
        self._pool: asyncpg.Pool | None = None
        self._primary: asyncpg.Pool | None = None
        self._system: int | None = None  # the primary's system identifier
        self._verified = False  # role and system identifier checked since the replica was last reached
        # (when, primary WAL position) samples the replica has not replayed yet; enough to see twice the lag limit.
        self._samples: deque[tuple[float, int]] = deque(maxlen=max(60, int(2 * max_lag_ms / 1000 / self.interval) + 2))
        self._watching: asyncio.Task[None] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Replica:
        # Litestar deep-copies a router with its middleware's arguments: the process has one replica, not copies.
        return self

    @property
    def connections(self) -> asyncpg.Pool:
        """The replica's pool (raises when it was not started)."""
        if self._pool is None:
            raise RuntimeError("the read replica's pool is not running")
        return self._pool

    async def start(self, primary: asyncpg.Pool) -> None:
        """Open the pool (it connects lazily: a replica that is down does not stop the server), check, watch.

        Raises ``UnsafeRoleError`` when the replica is reached and its role would bypass RLS.
        """
        self._primary = primary
        self._system = await primary.fetchval(SYSTEM_SQL)
        self._pool = await asyncpg.create_pool(self.dsn, **(self._pool_options | {"min_size": 0}))
        try:
            await self.check()
        except UnsafeRoleError:
            await self._pool.close()
            raise
        self._watching = asyncio.create_task(self._watch(), name="read replica health")

    async def stop(self) -> None:
        """Stop watching and close the pool."""
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()

    def skip(self, reason: str, detail: str = "") -> None:
        """Stop using the replica now (e.g. a request found it gone); the next healthy check brings it back."""
        self._verified = False
        self._set(False, reason, None, detail)

    async def check(self) -> None:
        """One health check: sample the primary's WAL position, then see how far the replica replayed."""
        loop = asyncio.get_running_loop()
        assert self._primary is not None, "check() before start()"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                self._samples.append((loop.time(), await self._primary.fetchval(POSITION_SQL)))
        except UNREACHABLE_ERRORS:
            pass  # the primary's own outage is /ready's business; the samples taken so far still count
        try:
            async with asyncio.timeout(CHECK_TIMEOUT), self.connections.acquire() as connection:
                if not self._verified:
                    await self._verify(connection)
                status = await connection.fetchrow(REPLAYED_SQL)
        except UnsafeRoleError:
            raise
        except UNREACHABLE_ERRORS as error:
            self.skip("unreachable", repr(error))
            return
        if not self._verified:
            self._set(False, "not a standby of this primary (another system identifier)", None)
        elif not status["standby"] or status["replayed"] is None:
            self._set(False, "not a standby (pg_is_in_recovery() is false)", None)
        else:
            while self._samples and self._samples[0][1] <= status["replayed"]:
                self._samples.popleft()
            lag = (loop.time() - self._samples[0][0]) * 1000 if self._samples else 0.0
            if lag > self.max_lag_ms:
                self._set(False, f"behind the primary by more than DB_REPLICA_MAX_LAG_MS={self.max_lag_ms}", lag)
            else:
                self._set(True, "healthy", lag)

    async def _verify(self, connection: asyncpg.Connection) -> None:
        """The start-up self-check on the replica's role, and that it replicates this primary."""
        async with connection.transaction():  # behind pgbouncer (transaction mode): one server connection
            await check_runtime_role(connection)
            self._verified = await connection.fetchval(SYSTEM_SQL) == self._system

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except UnsafeRoleError as error:
                self._set(False, f"refused, never used until a restart: {error}", None)
                return
            except Exception as error:  # the watcher outlives any failure, or the replica never comes back
                log.exception("read replica health check failed")
                self.skip("health check failed", repr(error))

    def _set(self, usable: bool, reason: str, lag_ms: float | None, detail: str = "") -> None:
        """Record the state; log one line when the replica comes into use or is skipped for a new reason."""
        changed = usable != self.usable or reason != self.reason
        self.usable, self.reason, self.lag_ms = usable, reason, lag_ms
        if not changed:
            return
        lag = "unknown" if lag_ms is None else f"{lag_ms:.0f} ms"
        if usable:
            log.info("read replica in use: lag %s", lag)
        else:
            log.warning(
                "read replica skipped, reads go to the primary: %s%s; lag %s",
                reason,
                f" ({detail})" if detail else "",
                lag,
            )
