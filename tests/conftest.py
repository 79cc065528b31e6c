"""Shared fixtures: a throwaway PostgreSQL, the real app over HTTP, and data factories.

The database is a fresh one per test run: on ``TEST_DATABASE_URL`` when it names a
server (a new database is created there and dropped afterwards), otherwise on an
embedded PostgreSQL in a temporary directory. ``db upgrade`` runs on it as the owner;
the app connects as the runtime role ``chat_app``, so every test sees RLS as production
does. Tests create their own tenants (``world`` fixture) and never depend on each
other's rows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from app.db.embedded import EmbeddedPostgres
from app.db.upgrade import upgrade
from app.main import create_app
from app.settings import Settings, runtime_dsn_from
from tests.factories import World, make_world

# Generated per run, as an operator makes one: the app under test runs in production mode.
TEST_JWT_SECRET = secrets.token_urlsafe(48)
TEST_RUNTIME_PASSWORD = "chat_app_test_password"


@dataclass(frozen=True)
class TestDatabase:
    """The run's database: owner (migrator) and runtime (``chat_app``) DSNs."""

    owner_dsn: str
    runtime_dsn: str


def _with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def database() -> Iterator[TestDatabase]:
    """A fresh, upgraded database for this test run."""
    server: EmbeddedPostgres | None = None
    tmp: Path | None = None
    server_dsn = os.environ.get("TEST_DATABASE_URL")
    if not server_dsn:
        tmp = Path(tempfile.mkdtemp(prefix="chat-test-pg-"))
        server = EmbeddedPostgres(tmp / "pgdata")
        server_dsn = server.start()
    name = f"chat_test_{uuid.uuid4().hex[:12]}"
    owner_dsn = _with_database(server_dsn, name)
    runtime_dsn = runtime_dsn_from(owner_dsn, TEST_RUNTIME_PASSWORD)

    async def create() -> None:
        connection = await asyncpg.connect(server_dsn)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        await upgrade(owner_dsn, runtime_dsn)

    async def drop() -> None:
        connection = await asyncpg.connect(server_dsn)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(create())
    try:
        yield TestDatabase(owner_dsn=owner_dsn, runtime_dsn=runtime_dsn)
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)  # type: ignore[arg-type]
        else:
            asyncio.run(drop())


@pytest.fixture
def fresh_database(database: TestDatabase) -> Iterator[TestDatabase]:
    """An empty database of its own on the run's server (not upgraded), dropped afterwards."""
    server_dsn = _with_database(database.owner_dsn, "postgres")
    name = f"chat_fresh_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(server_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    owner_dsn = _with_database(server_dsn, name)
    try:
        yield TestDatabase(owner_dsn=owner_dsn, runtime_dsn=runtime_dsn_from(owner_dsn, TEST_RUNTIME_PASSWORD))
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database: TestDatabase) -> Settings:
    """Settings of the app under test: production, HS256 with the run's generated secret, small pool.

    Development mode (the ``/dev`` routes, the development key) is
    ``app_with(app_env="development", jwt_secret=None)``.
    """
    return Settings(
        database_url=database.owner_dsn,
        app_database_url=database.runtime_dsn,
        app_env="production",
        jwt_secret=TEST_JWT_SECRET,
        pool_min_size=1,
        pool_max_size=8,
        pool_timeout=5.0,
    )


@pytest.fixture(scope="session")
async def owner(database: TestDatabase) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the owner role (superuser in tests): to arrange data and to check it afterwards."""
    pool = await asyncpg.create_pool(database.owner_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


def serve(settings: Settings, handlers: tuple[Any, ...] = ()) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The real app for ``settings`` (lifespan included), with an HTTP client on it (see ``serve_app``)."""
    return serve_app(create_app(settings, handlers))


@asynccontextmanager
async def serve_app(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` started (lifespan included), with an HTTP client on it.

    The app runs in the test's own event loop (httpx's ASGI transport), so requests sent
    with ``asyncio.gather`` really are concurrent — unlike Litestar's test client, whose
    transport handles one request at a time.
    """
    started, stopping = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        # Entered and exited in this one task (anyio's cancel scopes require it).
        async with app.lifespan():
            started.set()
            await stopping.wait()

    running = asyncio.create_task(lifespan())
    await asyncio.wait([running, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()  # start-up failed: raise its error
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]  # typed narrower
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        stopping.set()
        await running


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the real app, connected as the runtime role."""
    async with serve(settings) as http:
        yield http


@pytest.fixture
def app_with(settings: Settings) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with app_with(pool_max_size=2) as http:`` — the app with some settings changed.

    ``handlers=(...)`` mounts extra test routes under ``/api/{tenant_id}`` (guard and transaction included).
    """

    def start(handlers: tuple[Any, ...] = (), **changes: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return serve(replace(settings, **changes), handlers)

    return start


@pytest.fixture
async def world(owner: asyncpg.Pool) -> World:
    """Two fresh tenants, A and B, each with an admin, two supporters, agents and sessions."""
    return await make_world(owner, TEST_JWT_SECRET)


@pytest.fixture(scope="session")
async def seeded(database: TestDatabase) -> None:
    """The demo data (tenants eTMS, eFMS, Vela), seeded with the real CLI ``python -m app db seed``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "db", "seed", env={**os.environ, "DATABASE_URL": database.owner_dsn}
    )
    assert await asyncio.wait_for(process.wait(), timeout=120) == 0
