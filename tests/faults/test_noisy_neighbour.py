"""One tenant cannot starve the others (issue 10 item 1), over real sockets to a real server.

A real ``python -m app serve`` process with a pool of 4. Tenant A's requests go over raw
sockets, so a test can send half a request and stop, as the attacker did; tenant B uses
httpx. The ordering is by events, not sleeps: B starts only once the server has read every
byte A sent (the server sockets' receive queues in ``/proc/net/tcp`` are empty), and once
A's queries wait on the owner's row lock (``pg_stat_activity``). Tests never assert
wall-clock times; the deadlines only bound a hang.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx

from tests.conftest import TEST_JWT_SECRET
from tests.factories import TestTenant, TestUser, World
from tests.live import LiveServer, live_server
from tests.polling import wait_for_lock_waiters

if TYPE_CHECKING:
    from tests.conftest import TestDatabase

POOL = 4
TENANT_MAX = 2  # DB_POOL_TENANT_MAX: half the pool, as the default will be
NO_HANG = 30.0
# A body of exactly 100 bytes; the slow client announces all of it and sends the first 9.
BODY = b'{"title": "' + b"x" * 87 + b'"}'
SENT = 9
IN_TRANSACTION_SQL = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE usename = 'chat_app' AND datname = current_database() AND xact_start IS NOT NULL"
)


class RawClient:
    """One HTTP/1.1 request on its own socket, sent in as many parts as the test likes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: LiveServer) -> RawClient:
        """Connect to the server."""
        host, port = server.url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    @property
    def port(self) -> int:
        """The client's local port (its server-side socket's remote port)."""
        return int(self.writer.get_extra_info("sockname")[1])

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until the kernel took it."""
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of the response."""
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.rstrip("\r\n").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        """Drop the connection."""
        self.writer.transport.abort()


def patch_head(tenant: TestTenant, user: TestUser, session_id: uuid.UUID) -> bytes:
    """The header block of ``PATCH`` on the session, announcing the 100-byte BODY."""
    return (
        f"PATCH {tenant.path(f'sessions/{session_id}')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {user.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()


def unread_bytes(server_port: int, client_ports: set[int]) -> dict[int, int]:
    """Per client port: bytes it sent that the server process has not read yet (``/proc/net/tcp`` rx_queue)."""
    unread = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, remote, _, queues, *_ = line.split()
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) in client_ports:
            unread[int(remote.split(":")[1], 16)] = int(queues.split(":")[1], 16)
    return unread


async def wait_until_read(server: LiveServer, clients: list[RawClient]) -> None:
    """Until the server has read every byte the clients sent (bounded)."""
    port = int(server.url.rsplit(":", 1)[1])
    ports = {c.port for c in clients}
    deadline = time.monotonic() + NO_HANG
    while True:
        unread = unread_bytes(port, ports)
        if unread.keys() == ports and not any(unread.values()):
            return
        assert time.monotonic() < deadline, f"the server did not read the requests: {unread}"
        await asyncio.sleep(0.01)


def env_for(database: TestDatabase, **extra: str) -> dict[str, str]:
    """A live server on the run's database with a pool of POOL connections."""
    return {
        "DATABASE_URL": database.owner_dsn,
        "APP_DATABASE_URL": database.runtime_dsn,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DB_POOL_MAX_SIZE": str(POOL),
        "DB_POOL_TIMEOUT": "2",
        **extra,
    }


async def tenant_b_lists(server: LiveServer, world: World) -> list[httpx.Response]:
    """Tenant B's supporter and admin list their sessions, twice each, at once."""
    async with httpx.AsyncClient(base_url=server.url, timeout=NO_HANG) as http:
        callers = [world.b.bob, world.b.admin] * 2
        return await asyncio.gather(*(http.get(world.b.path(), headers=user.headers) for user in callers))


def assert_b_served(responses: list[httpx.Response], world: World) -> None:
    """Every one of B's lists answered 200 with exactly B's own rows."""
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses]
    expected = [world.b.sessions[world.b.bob.user_id], list(world.b.all_session_ids)] * 2
    for response, ids in zip(responses, expected, strict=True):
        assert {s["session_id"] for s in response.json()["sessions"]} == {str(i) for i in ids}


async def first_answers(
    answers: list[asyncio.Task[tuple[int, dict[str, str], bytes]]], count: int
) -> list[tuple[int, dict[str, str], bytes]]:
    """The answers that arrived once ``count`` of them did, or when NO_HANG / 2 passed (fewer, then)."""
    deadline = time.monotonic() + NO_HANG / 2
    while sum(t.done() for t in answers) < count and time.monotonic() < deadline:
        pending = [t for t in answers if not t.done()]
        await asyncio.wait(pending, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED)
    return [t.result() for t in answers if t.done()]


@contextmanager
def closing(clients: list[RawClient]) -> Iterator[list[RawClient]]:
    """Drop every client's connection on the way out (so the server can shut down)."""
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


@asynccontextmanager
async def row_locked(owner: asyncpg.Pool, session_id: uuid.UUID) -> AsyncIterator[None]:
    """The owner holds ``SELECT … FOR UPDATE`` on the session: every write of it waits inside PostgreSQL."""
    async with owner.acquire() as connection, connection.transaction():
        await connection.execute("SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", session_id)
        yield


async def test_tenant_a_slow_bodies_hold_no_pooled_connection_and_tenant_b_is_served(
    database: TestDatabase, world: World, owner: asyncpg.Pool
) -> None:
    a, alice = world.a, world.a.alice
    session_id = a.sessions[alice.user_id][0]
    with live_server(env_for(database)) as server, closing([]) as slow:
        async with asyncio.timeout(4 * NO_HANG):
            for _ in range(POOL):  # as many unfinished requests as the pool has connections
                slow.append(await RawClient.open(server))
                await slow[-1].send(patch_head(a, alice, session_id) + BODY[:SENT])
            await wait_until_read(server, slow)
            b_responses = await tenant_b_lists(server, world)
            # B is done (its transactions ended before its responses were sent): what is left is A's.
            held_while_sending = await owner.fetchval(IN_TRANSACTION_SQL)
            for client in slow:
                await client.send(BODY[SENT:])
            finished = [await client.response() for client in slow]
    print(
        f"\nA: {POOL} half-sent bodies; B: {[r.status_code for r in b_responses]}; "
        f"connections in a transaction while A was still sending: {held_while_sending}"
    )
    assert_b_served(b_responses, world)
    assert held_while_sending == 0  # no pooled connection waits for a client's body
    # A's requests were alive all along: once their bodies arrive they succeed.
    assert [status for status, _, _ in finished] == [200] * POOL
    assert all(b'"title":"' + b"x" * 87 + b'"' in body for _, _, body in finished)


async def test_tenant_a_slow_queries_hold_at_most_its_share_and_tenant_b_is_served(
    database: TestDatabase, world: World, owner: asyncpg.Pool
) -> None:
    a, alice = world.a, world.a.alice
    session_id = a.sessions[alice.user_id][0]
    env = env_for(database, DB_POOL_TENANT_MAX=str(TENANT_MAX), DB_STATEMENT_TIMEOUT_MS="60000")
    requests = POOL + TENANT_MAX  # more than the pool: A would take all of it and queue for more
    with live_server(env) as server, closing([]) as clients:
        async with asyncio.timeout(4 * NO_HANG):
            async with row_locked(owner, session_id):
                for _ in range(requests):
                    clients.append(await RawClient.open(server))
                    await clients[-1].send(patch_head(a, alice, session_id) + BODY)
                answers = [asyncio.create_task(c.response()) for c in clients]
                await wait_until_read(server, clients)
                await wait_for_lock_waiters(owner, TENANT_MAX)
                b_responses = await tenant_b_lists(server, world)
                held_by_a = await owner.fetchval(IN_TRANSACTION_SQL)
                # A's requests beyond its share wait, then are refused, while the lock still holds.
                refused_while_locked = await first_answers(answers, requests - TENANT_MAX)
            # The lock is gone: A's requests that held its share finish.
            answered = await asyncio.gather(*answers)
    print(
        f"\nA: {requests} PATCHes on a row-locked session; B: {[r.status_code for r in b_responses]}; "
        f"A held {held_by_a} of {POOL} connections; A answered while locked: "
        f"{sorted(s for s, _, _ in refused_while_locked)}, in all: {sorted(s for s, _, _ in answered)}"
    )
    assert_b_served(b_responses, world)
    assert held_by_a <= TENANT_MAX
    assert len(refused_while_locked) == requests - TENANT_MAX
    for status, headers, _ in refused_while_locked:
        assert status == 503
        assert "retry-after" in headers
    assert sorted(s for s, _, _ in answered) == [200] * TENANT_MAX + [503] * (requests - TENANT_MAX)
