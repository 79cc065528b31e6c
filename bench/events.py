"""``make bench-events``: live updates with 1, 100 and 1,000 open streams in one server process.

For each stream count a fresh ``python -m app serve`` (one process) on the ``bench_events``
database (10 tenants × 100 supporters, one session each), and SSE clients on raw asyncio
connections in this process:

- **memory per open stream**: the server's RSS before and after opening the streams;
- **idle CPU**: the server's CPU per second with the streams open and no write (keep-alives and
  the callers' checks);
- **own sessions**: each stream follows its own user (N streams of N users); messages are
  posted at a fixed rate (open loop) into random users' sessions, so each write reaches one
  stream;
- **one user's N tabs**: N streams of one user; each message reaches all N.

A write is a transaction as the API runs it (BEGIN with the limits, ``set_context``, the
messages domain's insert), sent by this process through asyncpg as ``chat_app``; the delay of
an event is its arrival on a stream minus the moment COMMIT was sent. CPU per delivered event:
the server's CPU time over the measured window (reads, fan-out, SSE) divided by the events it
delivered (``session`` and ``message``). ``EVENTS_SECONDS`` (default 10), ``EVENTS_STREAMS``
(default 1,100,1000), ``EVENTS_RATE`` (writes/s of the own-sessions scenario, default 50) and
``EVENTS_TABS_RATE`` (default 5) change the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from app.auth.tokens import mint_token
from app.db.context import set_context
from app.messages.queries import add_statement
from bench import harness
from bench.scenarios import LIMITS, SETTINGS, _compiled

TENANTS, USERS_PER_TENANT = 10, 100
SECONDS = float(os.environ.get("EVENTS_SECONDS", "10"))
STREAMS = [int(x) for x in os.environ.get("EVENTS_STREAMS", "1,100,1000").split(",") if x.strip()]
RATE = float(os.environ.get("EVENTS_RATE", "50"))
TABS_RATE = float(os.environ.get("EVENTS_TABS_RATE", "5"))
OPEN_CONCURRENCY = 20
DRAIN_SECONDS = 30.0
CONTENT = "Any news on shipment 4711? The customer is asking again."


@dataclass(frozen=True)
class User:
    """A supporter of the bench data, with a token and their one session."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    session_id: uuid.UUID
    token: str


async def load(owner_dsn: str) -> list[User]:
    """10 tenants × 100 supporters with one session each (as the owner, a superuser here)."""
    connection = await asyncpg.connect(owner_dsn)
    users: list[User] = []
    try:
        for t in range(TENANTS):
            tenant_id = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-events/{t}")
            await connection.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)", tenant_id, f"events-{t}")
            rows = []
            for u in range(USERS_PER_TENANT):
                user_id = uuid.uuid5(tenant_id, f"user/{u}")
                rows.append((user_id, tenant_id, f"u{u}@events-{t}.example", f"User {u}", "supporter"))
            await connection.executemany(
                "INSERT INTO users (user_id, tenant_id, email, display_name, role) VALUES ($1, $2, $3, $4, $5)", rows
            )
            for user_id, *_ in rows:
                session_id = await connection.fetchval(
                    "INSERT INTO sessions (tenant_id, user_id, title) VALUES ($1, $2, 'bench') RETURNING session_id",
                    tenant_id,
                    user_id,
                )
                token = mint_token(user_id, tenant_id, SETTINGS, ttl_seconds=7200)
                users.append(User(tenant_id, user_id, session_id, token))
    finally:
        await connection.close()
    return users


# --------------------------------------------------------------------------- SSE clients on raw sockets


@dataclass
class Arrivals:
    """When each message reached each stream, and how many events were delivered in all."""

    at: dict[uuid.UUID, list[float]] = field(default_factory=dict)
    events: int = 0
    messages: int = 0
    expected: int | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self, message_id: uuid.UUID, now: float) -> None:
        """A ``message`` event arrived."""
        self.at.setdefault(message_id, []).append(now)
        self.messages += 1
        if self.expected is not None and self.messages >= self.expected:
            self.complete.set()

    def reset(self) -> None:
        """Forget what arrived so far (the warm-up)."""
        self.at.clear()
        self.messages = 0


class SseClient:
    """One open stream over a raw asyncio connection (HTTP/1.1, chunked): no client library in the timing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, arrivals: Arrivals) -> None:
        self.reader = reader
        self.writer = writer
        self.arrivals = arrivals
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, base: str, user: User, arrivals: Arrivals) -> SseClient:
        """Connect, send ``GET /events``, read the 200's head; then read its body in a task."""
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
        writer.write(harness.http_request("GET", f"/api/{user.tenant_id}/events", user.token))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            raise RuntimeError(f"GET /events answered {status}: {head!r}")
        client = cls(reader, writer, arrivals)
        client.task = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        pending = b""
        while True:
            size = int((await self.reader.readline()).strip() or b"0", 16)
            if size == 0:
                return
            pending += (await self.reader.readexactly(size + 2))[:-2]
            now = time.perf_counter()
            *messages, pending = pending.split(b"\r\n\r\n")
            for message in messages:
                if message.startswith(b":"):
                    continue  # a keep-alive
                self.arrivals.events += 1
                if b"event: message\r\n" in message:
                    data = message.split(b"data: ", 1)[1]
                    self.arrivals.arrived(uuid.UUID(json.loads(data)["message_id"]), now)

    async def close(self) -> None:
        """Close the connection (the server sees the client leave)."""
        if self.task is not None:
            self.task.cancel()
        self.writer.close()


async def open_streams(base: str, users: Sequence[User], arrivals: Arrivals) -> list[SseClient]:
    """One stream per entry of ``users``, ``OPEN_CONCURRENCY`` at a time."""
    clients: list[SseClient] = []
    for start in range(0, len(users), OPEN_CONCURRENCY):
        batch = users[start : start + OPEN_CONCURRENCY]
        clients += await asyncio.gather(*(SseClient.open(base, u, arrivals) for u in batch))
    return clients


# --------------------------------------------------------------------------- writes and figures


async def post(pool: asyncpg.Pool, user: User, commits: dict[uuid.UUID, float]) -> None:
    """Post a message as the API does; remember when COMMIT was sent."""
    sql, args = _compiled(*add_statement(user.tenant_id, user.session_id, user.user_id, "user", CONTENT))
    async with pool.acquire() as connection:
        await connection.execute(LIMITS.begin_sql)
        await set_context(connection, user.tenant_id, user.user_id)
        message_id = await connection.fetchval(sql, *args)
        commits[message_id] = time.perf_counter()
        await connection.execute("COMMIT")


async def write_load(
    pool: asyncpg.Pool, writers: Sequence[User], rate: float, seconds: float
) -> dict[uuid.UUID, float]:
    """Messages at ``rate`` per second for ``seconds`` (open loop: on schedule, not after the previous one)."""
    commits: dict[uuid.UUID, float] = {}
    rng = random.Random(7)
    started = time.perf_counter()
    tasks = []
    for n in range(int(rate * seconds)):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(pool, rng.choice(writers), commits)))
    await asyncio.gather(*tasks)
    return commits


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def measure(
    server: harness.Server,
    pool: asyncpg.Pool,
    name: str,
    streams: int,
    audience: Sequence[User],
    writers: Sequence[User],
    fanout: int,
    rate: float,
) -> dict[str, Any]:
    """Open one stream per ``audience`` entry, post at ``rate`` into ``writers``' sessions; the figures."""
    arrivals = Arrivals()
    clients = await open_streams(server.base, audience, arrivals)
    try:
        await write_load(pool, writers, rate, 1.0)  # warm-up
        await asyncio.sleep(1.0)
        arrivals.reset()
        events_before, cpu_before = arrivals.events, harness.tree_cpu_seconds(server.pid)
        commits = await write_load(pool, writers, rate, SECONDS)
        arrivals.expected = len(commits) * fanout
        if arrivals.messages < arrivals.expected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrivals.complete.wait(), DRAIN_SECONDS)
        cpu = harness.tree_cpu_seconds(server.pid) - cpu_before
        delivered = arrivals.events - events_before
    finally:
        for client in clients:
            await client.close()
    delays = sorted(t - commits[m] for m, times in arrivals.at.items() if m in commits for t in times)
    expected = len(commits) * fanout
    return {
        "scenario": name,
        "streams": streams,
        "writes": len(commits),
        "events": delivered,
        "missing": expected - len(delays),
        "p50_ms": harness.percentile(delays, 50) * 1000,
        "p99_ms": harness.percentile(delays, 99) * 1000,
        "max_ms": (delays[-1] if delays else float("nan")) * 1000,
        "cpu_ms_per_event": cpu * 1000 / max(1, delivered),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


async def idle(server: harness.Server, users: Sequence[User]) -> dict[str, Any]:
    """Memory per open stream and the CPU of open, quiet streams."""
    await asyncio.sleep(1.0)
    before = rss_kib(server.pid)
    arrivals = Arrivals()
    clients = await open_streams(server.base, users, arrivals)
    try:
        await asyncio.sleep(2.0)
        after = rss_kib(server.pid)
        cpu_before = harness.tree_cpu_seconds(server.pid)
        await asyncio.sleep(SECONDS)
        cpu = harness.tree_cpu_seconds(server.pid) - cpu_before
    finally:
        for client in clients:
            await client.close()
    return {
        "streams": len(users),
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "kib_per_stream": (after - before) / len(users),
        "idle_cpu_ms_per_s": cpu * 1000 / SECONDS,
    }


def print_row(row: dict[str, Any]) -> None:
    """One line of the table."""
    print(
        f"{row['scenario']:<22} {row['streams']:>5} | {row['writes']:>5} {row['events']:>7} {row['missing']:>4} | "
        f"{row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['max_ms']:>7.1f} | {row['cpu_ms_per_event']:>6.3f} | "
        f"load {row['load_average'][0]:.2f}",
        flush=True,
    )


async def run_count(
    server: harness.Server, db: harness.Database, users: list[User], count: int
) -> list[dict[str, Any]]:
    """The idle figures, then both scenarios, with ``count`` open streams."""
    pool = await asyncpg.create_pool(db.runtime_dsn, min_size=4, max_size=8)
    try:
        memory = await idle(server, users[:count]) if count > 1 else None
        if memory:
            print(
                f"  {count} open streams: RSS {memory['rss_before_mib']:.1f} → {memory['rss_after_mib']:.1f} MiB, "
                f"{memory['kib_per_stream']:.1f} KiB per stream; idle CPU {memory['idle_cpu_ms_per_s']:.1f} ms/s",
                flush=True,
            )
        own = await measure(server, pool, "own sessions", count, users[:count], users[:count], 1, RATE)
        print_row(own)
        tabs = await measure(server, pool, "one user's tabs", count, [users[0]] * count, [users[0]], count, TABS_RATE)
        print_row(tabs)
        return [{"idle": memory, **own}, tabs]
    finally:
        await pool.close()


def main() -> None:
    """Load, measure each stream count on a fresh server, print, save the JSON."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 streams: 2,000 sockets on this machine
    os.environ["EVENTS_MAX_STREAMS"] = str(max(STREAMS) + 10)
    report = harness.Report("events", {"tenants": TENANTS, "users_per_tenant": USERS_PER_TENANT})
    with harness.database_server() as server_dsn:
        db, _ = asyncio.run(harness.open_database(server_dsn, "bench_events", fresh=True))
        users = asyncio.run(load(db.owner_dsn))
        report.conditions = harness.machine() | asyncio.run(harness.server_facts(db.owner_dsn))
        report.conditions |= {"seconds": SECONDS, "rate": RATE, "tabs_rate": TABS_RATE}
        print(f"== events: {json.dumps(report.dataset)}\n   conditions: {json.dumps(report.conditions)}")
        print(
            f"{'scenario':<22} {'N':>5} | {'writes':>5} {'events':>7} {'miss':>4} | "
            f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} | {'cpu ms':>6} | per event"
        )
        rows: list[dict[str, Any]] = []
        for count in STREAMS:
            with harness.api_server(db, 1) as server:
                rows += asyncio.run(run_count(server, db, users, count))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    path = harness.RESULTS / f"events-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"dataset": report.dataset, "conditions": report.conditions, "rows": rows}, indent=2))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
