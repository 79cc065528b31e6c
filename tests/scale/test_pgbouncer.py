"""Scale-out: two API processes behind one pgbouncer in transaction mode.

pgbouncer (Debian's package; ``make test`` installs it as root when missing) hands the same few server
connections to both API processes in turn, transaction by transaction. Because the
tenant context is transaction-local, interleaved requests of two tenants never see a
foreign row, and a client with no context, on those same server connections, sees no
row and no leftover setting. asyncpg runs with ``DB_STATEMENT_CACHE_SIZE=0`` (pgbouncer
1.18 has no prepared-statement support), and the statement timeout — a start-up
parameter pgbouncer must ignore — still holds, because it is set in each transaction.
Figures are printed (``-s``); tests never assert wall-clock times.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.conftest import TEST_JWT_SECRET, TEST_RUNTIME_PASSWORD
from tests.factories import World
from tests.faults.test_slow_database import sessions_locked
from tests.live import free_port, live_server
from tests.polling import until
from tests.sse import stream

POOL_SIZE = 4  # server connections pgbouncer may open for the runtime role
REQUESTS = 600
CONCURRENCY = 32


def pgbouncer_binary() -> str:
    """The pgbouncer executable: ``$PGBOUNCER`` (set and checked by ``make test``), else the one installed."""
    found = (
        os.environ.get("PGBOUNCER") or shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")
    )
    assert found, "pgbouncer is not installed: run `make pgbouncer` (apt-get install pgbouncer)"
    return found


def start_pgbouncer(stack: ExitStack, runtime_dsn: str) -> str:
    """pgbouncer in transaction mode in front of the test database; the runtime DSN through it."""
    target = urlsplit(runtime_dsn)
    database = target.path.lstrip("/")
    workdir = Path(tempfile.mkdtemp(prefix="chat-pgbouncer-"))
    stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    workdir.chmod(0o755)  # pgbouncer refuses to run as root: it reads these as 'nobody'
    port = free_port()
    (workdir / "users.txt").write_text(f'"chat_app" "{TEST_RUNTIME_PASSWORD}"\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = host={target.hostname} port={target.port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = md5
auth_file = {workdir / "users.txt"}
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 200
ignore_startup_parameters = statement_timeout
"""
    )
    for name in ("users.txt", "pgbouncer.ini"):
        (workdir / name).chmod(0o644)
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    log = (workdir / "pgbouncer.log").open("wb")
    process = subprocess.Popen([pgbouncer_binary(), *user, str(workdir / "pgbouncer.ini")], stdout=log, stderr=log)

    def stop() -> None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

    stack.callback(stop)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None, (workdir / "pgbouncer.log").read_text()
            assert time.monotonic() < deadline, "pgbouncer did not start"
            time.sleep(0.1)
    return f"postgresql://chat_app:{TEST_RUNTIME_PASSWORD}@127.0.0.1:{port}/{database}"


@pytest.fixture(scope="module")
def through_pgbouncer(database) -> Iterator[tuple[str, list[str]]]:
    """The pgbouncer DSN and two API processes connected through it."""
    with ExitStack() as stack:
        dsn = start_pgbouncer(stack, database.runtime_dsn)
        env = {
            "DATABASE_URL": database.owner_dsn,
            "APP_DATABASE_URL": dsn,
            "JWT_SECRET": TEST_JWT_SECRET,
            "DB_STATEMENT_CACHE_SIZE": "0",
            "DB_POOL_MAX_SIZE": "8",
            "DB_STATEMENT_TIMEOUT_MS": "3000",
            "DB_POOL_TIMEOUT": "30",  # the load test measures, it must not shed load
            "APP_LISTEN_DATABASE_URL": database.runtime_dsn,  # LISTEN needs a direct connection
        }
        servers = [stack.enter_context(live_server(env)) for _ in range(2)]
        yield dsn, [server.url for server in servers]


@pytest.fixture
async def clients(through_pgbouncer) -> AsyncIterator[list[httpx.AsyncClient]]:
    """An HTTP client per API process."""
    _dsn, urls = through_pgbouncer
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with (
        httpx.AsyncClient(base_url=urls[0], limits=limits, timeout=30) as first,
        httpx.AsyncClient(base_url=urls[1], limits=limits, timeout=30) as second,
    ):
        yield [first, second]


async def test_interleaved_tenants_through_pgbouncer_and_two_processes_see_no_foreign_row(
    through_pgbouncer, clients: list[httpx.AsyncClient], world: World, owner: asyncpg.Pool, database
) -> None:
    dsn, _urls = through_pgbouncer
    callers = [(world.a, world.a.alice), (world.a, world.a.admin), (world.b, world.b.bob), (world.b, world.b.admin)]
    own = {
        user.user_id: {
            str(s) for s in (tenant.all_session_ids if user.role == "admin" else tenant.sessions[user.user_id])
        }
        for tenant, user in callers
    }
    latencies: list[float] = []
    foreign = wrong_identity = errors = 0
    server_connections: list[int] = []
    bare_seen: list[tuple[int, str]] = []
    semaphore = asyncio.Semaphore(CONCURRENCY)
    done = asyncio.Event()

    async def call(index: int) -> None:
        nonlocal foreign, wrong_identity, errors
        tenant, user = callers[index % len(callers)]
        http = clients[(index // len(callers)) % 2]  # every caller on both processes
        async with semaphore:
            started = time.perf_counter()
            if index % 5 == 4:
                response = await http.get(tenant.path("me"), headers=user.headers)
            else:
                response = await http.get(tenant.path(), headers=user.headers, params={"limit": 100})
            latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            errors += 1
        elif index % 5 == 4:
            body = response.json()
            wrong_identity += body["user_id"] != str(user.user_id) or body["tenant_id"] != str(tenant.tenant_id)
        else:
            seen = {s["session_id"] for s in response.json()["sessions"]}
            foreign += len(seen - own[user.user_id])
            wrong_identity += seen != own[user.user_id]

    async def bare_client() -> None:
        # A client with no context on the very server connections the API uses.
        connection = await asyncpg.connect(dsn, statement_cache_size=0)
        try:
            while not done.is_set() and len(bare_seen) < 2000:
                async with connection.transaction():
                    row = await connection.fetchrow(
                        "SELECT (SELECT count(*) FROM sessions) AS n, current_setting('app.tenant_id', true) AS t"
                    )
                bare_seen.append((row["n"], row["t"] or ""))
                await asyncio.sleep(0.002)
        finally:
            await connection.close()

    async def watch_server_connections() -> None:
        name = urlsplit(database.runtime_dsn).path.lstrip("/")
        while not done.is_set():
            server_connections.append(
                await owner.fetchval(
                    # The listening connections of the live updates are direct, not the pooler's.
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'chat_app' AND datname = $1"
                    " AND application_name IS DISTINCT FROM 'chat-sessions-api events'",
                    name,
                )
            )
            await asyncio.sleep(0.05)

    async with asyncio.timeout(300):
        side = [asyncio.create_task(bare_client()), asyncio.create_task(watch_server_connections())]
        started = time.perf_counter()
        await asyncio.gather(*(call(i) for i in range(REQUESTS)))
        elapsed = time.perf_counter() - started
        done.set()
        await asyncio.gather(*side)

    latencies.sort()
    print(
        f"\npgbouncer (transaction mode, pool {POOL_SIZE}) + 2 API processes: {REQUESTS} requests of 4 users in "
        f"2 tenants at concurrency {CONCURRENCY}: {REQUESTS / elapsed:.0f} req/s, "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms; "
        f"server connections of chat_app: max {max(server_connections)}; "
        f"context-less probes: {len(bare_seen)}, rows seen {sum(n for n, _ in bare_seen)}"
    )
    assert errors == 0
    assert foreign == 0
    assert wrong_identity == 0
    assert bare_seen
    assert all(row == (0, "") for row in bare_seen)  # no rows, no leftover tenant setting
    assert max(server_connections) <= POOL_SIZE  # the processes really shared the pooler's connections


async def test_the_statement_timeout_holds_behind_pgbouncer(
    clients: list[httpx.AsyncClient], world: World, owner: asyncpg.Pool
) -> None:
    # pgbouncer ignores the pool's start-up statement_timeout; the transaction-local one still cuts.
    async with asyncio.timeout(60), sessions_locked(owner):
        answers = await asyncio.gather(*(http.get(world.a.path(), headers=world.a.alice.headers) for http in clients))
    for response in answers:
        assert response.status_code == 503
        assert response.json()["detail"] == "the database did not answer in time, retry shortly"
    after = await clients[0].get(world.a.path(), headers=world.a.alice.headers)
    assert after.status_code == 200


async def test_live_updates_behind_pgbouncer_with_a_direct_listening_connection(
    clients: list[httpx.AsyncClient], world: World
) -> None:
    """Reads and writes go through the pooler; each process LISTENs on its own direct connection."""
    alice = world.a.alice
    async with stream(clients[1], world.a.tenant_id, alice.headers) as events:
        assert events.status_code == 200
        created = await clients[0].post(world.a.path(), headers=alice.headers, json={"title": "through pgbouncer"})
        assert created.status_code == 201
        event = await events.wait_for_event("session", "the event of the other process's write")
    assert event.json() == created.json()


async def test_a_listening_connection_through_pgbouncer_is_detected_and_said(through_pgbouncer, database) -> None:
    """LISTEN through a transaction-mode pooler loses events silently; the probe of every tick notices and says so."""
    dsn, _urls = through_pgbouncer
    env = {
        "DATABASE_URL": database.owner_dsn,
        "APP_DATABASE_URL": dsn,  # and no APP_LISTEN_DATABASE_URL: the listening connection goes through it too
        "JWT_SECRET": TEST_JWT_SECRET,
        "DB_STATEMENT_CACHE_SIZE": "0",
        "EVENTS_KEEPALIVE_SECONDS": "1",
    }
    with live_server(env) as server:
        await until(
            lambda: "is APP_LISTEN_DATABASE_URL behind a pooler in transaction mode?" in server.output(),
            "the server to say that its notifications get lost",
        )
