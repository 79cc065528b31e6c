"""``make bench-noisy``: what tenant B sees while tenant A holds the server's connection pool.

Issue 10 item 1. The real server (``python -m app serve``, one worker, the default pool of
10, ``DB_POOL_TIMEOUT`` 5 s, statement timeout 5 s) on loopback; tenant B (a supporter of
eFMS) lists its sessions (``GET /api/{B}/sessions``) from ``BENCH_NOISY_CONCURRENCY``
keep-alive connections (default 4) for ``BENCH_NOISY_SECONDS`` (default 12) per phase:

1. **no attack**;
2. **slow bodies**: with a valid token of tenant A (the supporter ``power`` of eTMS), one
   raw socket per pooled connection sends ``PATCH /api/{A}/sessions/{id}`` with
   ``Content-Length: 100`` and only the first 9 bytes of the body, and never finishes;
   at the end A's sockets are closed and the time until the pool is free is printed;
3. **slow queries**: the owner holds a row lock (``SELECT … FOR UPDATE``) on A's session,
   so each of A's (complete) PATCHes on it waits inside PostgreSQL, holding its pooled
   connection until the statement timeout; twice as many A clients as pooled connections
   send them back to back. At the end the lock goes and A's waiting requests finish.

Per phase it prints B's statuses (count and p50 per status) and latencies (p50, p99, max),
what A held (peak of the runtime role's backends idle in transaction, or waiting on a lock,
for over 1 s, sampled every 0.1 s from ``pg_stat_activity``) and A's own statuses. Every
wait is bounded and every request has a 30 s deadline, so the run ends by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import asyncpg

from app.auth.tokens import mint_token
from bench import harness
from bench.generate import TENANTS, Plan, load
from bench.harness import Database, HttpConnection, Server, http_request, percentile
from bench.scenarios import SETTINGS

PLAN = Plan(sessions=3_000, messages=30_000, power_sessions=100, sessions_per_user=100)
SECONDS = float(os.environ.get("BENCH_NOISY_SECONDS", "12"))
B_CLIENTS = int(os.environ.get("BENCH_NOISY_CONCURRENCY", "4"))
POOL = harness.SERVER_POOL_SIZE
A_QUERY_CLIENTS = 2 * POOL
REQUEST_DEADLINE = 30.0  # a request that takes longer counts as "no answer" (status 0)
SETTLE_DEADLINE = 10.0  # the longest wait for A to take hold of the pool, or to let go of it
# A body of exactly 100 bytes: the slow client announces all of it and sends the first 9.
BODY = b'{"title": "' + b"x" * 87 + b'"}'
SENT = 9
# Backends of the runtime role stuck for over 1 s: B's own transactions pass through both
# states in milliseconds (even on a busy machine), so what this counts is what A holds.
HELD_SQL = """
    SELECT count(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_transaction,
           count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_on_lock
    FROM pg_stat_activity
    WHERE usename = 'chat_app' AND datname = current_database()
      AND clock_timestamp() - state_change > interval '1 s'
"""


@dataclass(frozen=True)
class Tenant:
    """A tenant's caller: the list path or a session path, and a token."""

    tenant_id: str
    user_id: str
    token: str

    def path(self, rest: str = "sessions") -> str:
        """``/api/{tenant_id}/{rest}``"""
        return f"/api/{self.tenant_id}/{rest}"


@dataclass
class Phase:
    """One phase's figures."""

    name: str
    b: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds); status 0: no answer
    a: Counter[int] = field(default_factory=Counter)
    held: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class PoolWatch:
    """Samples the runtime role's backends every 0.1 s: the latest figures and the peak of each."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.latest: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # the sampler and ``until`` share the one connection

    async def sample(self) -> dict[str, int]:
        """One sample (also kept as ``latest`` and folded into ``peak``)."""
        async with self.lock:
            self.latest = dict(await self.connection.fetchrow(HELD_SQL))
        self.peak = {k: max(v, self.peak.get(k, 0)) for k, v in self.latest.items()}
        return self.latest

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(0.1)

    def restart(self) -> None:
        """Forget the peak and (re)start sampling."""
        self.peak = {}
        if self.task is None:
            self.task = asyncio.create_task(self._run())

    async def until(self, condition: Callable[[dict[str, int]], bool], deadline: float) -> float | None:
        """Seconds until ``condition`` holds for a fresh sample, or None when ``deadline`` seconds pass."""
        started = time.monotonic()
        while time.monotonic() - started < deadline:
            if condition(await self.sample()):
                return time.monotonic() - started
            await asyncio.sleep(0.02)
        return None

    async def stop(self) -> None:
        """Stop sampling."""
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def tenant_b(server: Server, b: Tenant, seconds: float) -> list[tuple[int, float]]:
    """B's clients list B's sessions back to back for ``seconds``: (status, seconds) per request."""
    results: list[tuple[int, float]] = []
    end = time.monotonic() + seconds

    async def client() -> None:
        connection = await HttpConnection.open(server.base)
        try:
            while time.monotonic() < end:
                started = time.perf_counter()
                try:
                    answer = await asyncio.wait_for(connection.request("GET", b.path(), b.token), REQUEST_DEADLINE)
                    results.append((answer.status, answer.seconds))
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    results.append((0, time.perf_counter() - started))
                    await connection.close()
                    connection = await HttpConnection.open(server.base)
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(B_CLIENTS)))
    return results


@dataclass
class Attack:
    """The server, the owner's watch on the pool, tenants A and B, and A's session."""

    server: Server
    db: Database
    watch: PoolWatch
    a: Tenant
    b: Tenant
    session_id: str

    async def tenant_b(self, phase: Phase) -> None:
        """B's load, with the peak of what the runtime role's backends held meanwhile."""
        self.watch.restart()
        phase.b = await tenant_b(self.server, self.b, SECONDS)
        phase.held = dict(self.watch.peak)

    async def slow_bodies(self, phase: Phase) -> None:
        """A's half-sent PATCHes, one per pooled connection, while B works; then A hangs up."""
        path = self.a.path(f"sessions/{self.session_id}")
        head = http_request("PATCH", path, self.a.token, BODY[:SENT], content_length=len(BODY))
        sockets = [await HttpConnection.open(self.server.base) for _ in range(POOL)]
        for s in sockets:
            await s.send(head)
        took = await self.watch.until(lambda held: held["idle_in_transaction"] >= POOL, SETTLE_DEADLINE)
        phase.notes.append(
            f"A: {POOL} sockets sent the headers and {SENT} of {len(BODY)} body bytes; "
            + self._held(took, f"{POOL} pooled connections idle in transaction")
        )
        await self.tenant_b(phase)
        for s in sockets:
            s.writer.transport.abort()
        freed = await self.watch.until(lambda held: held["idle_in_transaction"] == 0, SETTLE_DEADLINE)
        phase.notes.append(
            "after A hung up, the pool was "
            + (f"free {freed:.2f} s later" if freed is not None else f"still held {SETTLE_DEADLINE:.0f} s later")
        )

    async def slow_queries(self, phase: Phase) -> None:
        """A's PATCHes wait on a row lock the owner holds on A's session, back to back from 2 × pool clients."""
        path = self.a.path(f"sessions/{self.session_id}")
        stop = asyncio.Event()

        async def attacker() -> None:
            connection = await HttpConnection.open(self.server.base)
            try:
                while not stop.is_set():
                    try:
                        answer = await asyncio.wait_for(
                            connection.request("PATCH", path, self.a.token, BODY), REQUEST_DEADLINE
                        )
                    except (TimeoutError, OSError, asyncio.IncompleteReadError):
                        phase.a[0] += 1
                        return
                    phase.a[answer.status] += 1
            finally:
                await connection.close()

        lock = await asyncpg.connect(self.db.owner_dsn)
        try:
            transaction = lock.transaction()
            await transaction.start()
            await lock.execute("SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", uuid.UUID(self.session_id))
            attackers = [asyncio.create_task(attacker()) for _ in range(A_QUERY_CLIENTS)]
            took = await self.watch.until(lambda held: held["waiting_on_lock"] >= POOL, SETTLE_DEADLINE)
            phase.notes.append(
                f"A: {A_QUERY_CLIENTS} clients send PATCH back to back on a session the owner holds FOR UPDATE; "
                + self._held(took, f"{POOL} pooled connections waiting on the lock")
            )
            await self.tenant_b(phase)
            stop.set()
            await transaction.rollback()
            _, pending = await asyncio.wait(attackers, timeout=REQUEST_DEADLINE)
            for task in pending:
                task.cancel()
            phase.notes.append(f"A's statuses, until the lock went and A's last requests finished: {dict(phase.a)}")
        finally:
            await lock.close()

    def _held(self, took: float | None, what: str) -> str:
        if took is None:
            return f"the pool was not held within {SETTLE_DEADLINE:.0f} s ({self.watch.latest})"
        return f"{what} {took:.2f} s later"


def summary(phase: Phase) -> str:
    """B's figures of one phase as a table line."""
    latencies = sorted(s for _, s in phase.b)
    by_status: dict[int, list[float]] = {}
    for status, seconds in phase.b:
        by_status.setdefault(status, []).append(seconds)
    statuses = ", ".join(
        f"{status or 'no answer'}: {len(v)} (p50 {statistics.median(v) * 1000:.1f} ms)"
        for status, v in sorted(by_status.items())
    )
    return (
        f"{phase.name:<26} {len(latencies):>8} {percentile(latencies, 50) * 1000:>8.1f} "
        f"{percentile(latencies, 99) * 1000:>8.1f} {latencies[-1] * 1000 if latencies else 0:>8.1f}  "
        f"{phase.held.get('idle_in_transaction', 0):>3}/{phase.held.get('waiting_on_lock', 0):<3}  {statuses}"
    )


async def run(server: Server, db: Database, a: Tenant, b: Tenant, session_id: str) -> list[Phase]:
    """The three phases, one after the other, on one server."""
    attack = Attack(server, db, PoolWatch(await asyncpg.connect(db.owner_dsn)), a, b, session_id)
    phases = [Phase("no attack"), Phase("A: slow bodies"), Phase("A: slow queries")]
    steps = [attack.tenant_b, attack.slow_bodies, attack.slow_queries]
    try:
        for phase, step in zip(phases, steps, strict=True):
            print(f"   {phase.name} …", flush=True)
            await step(phase)
    finally:
        await attack.watch.stop()
        await attack.watch.connection.close()
    return phases


async def tenants(db: Database, loaded_tenants: dict[str, str], power: str) -> tuple[Tenant, Tenant]:
    """A: the supporter ``power`` of eTMS; B: the first supporter of eFMS."""
    connection = await asyncpg.connect(db.owner_dsn)
    try:
        b_user = await connection.fetchval(
            "SELECT user_id::text FROM users WHERE tenant_id = $1 AND role = 'supporter' ORDER BY email LIMIT 1",
            uuid.UUID(loaded_tenants[TENANTS[1]]),
        )
    finally:
        await connection.close()

    def tenant(name: str, user_id: str) -> Tenant:
        tenant_id = loaded_tenants[name]
        return Tenant(tenant_id, user_id, mint_token(uuid.UUID(user_id), uuid.UUID(tenant_id), SETTINGS, 3600))

    return tenant(TENANTS[0], power), tenant(TENANTS[1], b_user)


def main() -> None:
    """Seed, run the three phases, print the table."""
    with harness.database_server() as server_dsn:
        db, _ = asyncio.run(harness.open_database(server_dsn, "bench_noisy", fresh=True))
        loaded = asyncio.run(load(db.owner_dsn, PLAN))
        a, b = asyncio.run(tenants(db, loaded.tenants, loaded.power))
        facts = harness.machine() | asyncio.run(harness.server_facts(db.owner_dsn))
        print(f"== noisy neighbour: data {json.dumps(loaded.counts)}")
        print(f"   plan {json.dumps(asdict(PLAN))}")
        print(
            f"   server: python -m app serve, 1 worker, pool {POOL}, DB_POOL_TIMEOUT {SETTINGS.pool_timeout:g} s, "
            f"statement timeout {SETTINGS.statement_timeout_ms} ms"
        )
        print(
            f"   tenant B: a supporter of {TENANTS[1]}, GET {b.path()}, {B_CLIENTS} keep-alive clients, {SECONDS:g} s"
        )
        print(f"   conditions: {json.dumps(facts)}", flush=True)
        with harness.api_server(db, 1) as server:
            phases = asyncio.run(run(server, db, a, b, loaded.power_sessions[0]))
        print(f"   load average at the end: {[round(x, 2) for x in os.getloadavg()]}")
        print()
        print(f"{'phase':<26} {'B: reqs':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  {'A held':<7}  B's statuses")
        print("-" * 110)
        for phase in phases:
            print(summary(phase))
        print("A held: peak, during B's load, of pooled connections idle in transaction / waiting on a lock for > 1 s")
        for phase in phases:
            for note in phase.notes:
                print(f"{phase.name}: {note}")


if __name__ == "__main__":
    main()
