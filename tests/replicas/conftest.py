"""A real primary and its streaming hot standby, for the read-replica tests (one cluster per test run).

Both are embedded PostgreSQL servers (the binaries ``make test`` already uses) on loopback
ports of their own: the primary is upgraded and holds two tenants (``tests.factories``); the
standby is a ``pg_basebackup -R`` of it that streams its WAL. A ``TEST_DATABASE_URL``
server is not used here. After each test the standby runs again, replays again and has
caught up, whatever the test did to it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Controller, get, post

from app.db.embedded import EmbeddedPostgres
from app.db.replica import READS_WRITE
from app.db.upgrade import upgrade
from app.settings import Settings, runtime_dsn_from
from app.tables import Session
from tests.conftest import TEST_JWT_SECRET, TEST_RUNTIME_PASSWORD
from tests.e2e.conftest import browser, page  # noqa: F401  # the fixtures: headless Chromium (test_page.py)
from tests.factories import World, make_world
from tests.integration.test_errors import app_log  # noqa: F401  # the fixture: records of the ``app`` logger
from tests.polling import until

DATABASE = "chat"
WHERE_SQL = "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') = 'on' AS read_only"


class Where(Controller):
    """Test-only routes under /api/{tenant_id} (real guard and transaction): which server answered, read-only or not."""

    path = "/where"

    @get("/")
    async def read(self) -> dict[str, bool]:
        return dict((await Session.raw(WHERE_SQL))[0])

    @get("/reads-write", opt={READS_WRITE: True})
    async def read_that_writes(self) -> dict[str, bool]:
        return dict((await Session.raw(WHERE_SQL))[0])

    @get("/admin-reads-write", opt={READS_WRITE: "admin"})
    async def admin_read_that_writes(self) -> dict[str, bool]:
        return dict((await Session.raw(WHERE_SQL))[0])

    @get("/slow")
    async def slow_read(self) -> dict[str, bool]:
        await Session.raw("SELECT pg_sleep(0.5)")
        return dict((await Session.raw(WHERE_SQL))[0])

    @get("/holding-a-lock")
    async def holding_a_lock(self) -> dict[str, bool]:
        await Session.raw("SELECT count(*) FROM sessions")  # its lock is held until the transaction ends
        await Session.raw("SELECT pg_sleep(1)")
        return dict((await Session.raw(WHERE_SQL))[0])

    @get("/pause")
    async def pause_after_reading(self) -> dict[str, bool]:
        answer = dict((await Session.raw(WHERE_SQL))[0])
        await asyncio.sleep(0.5)  # idle in transaction: a test may end the backend before COMMIT
        return answer

    @post("/", status_code=200)
    async def write(self) -> dict[str, bool]:
        return dict((await Session.raw(WHERE_SQL))[0])


@dataclass
class Cluster:
    """The primary and the standby: servers, ports, DSNs, superuser pools, the test tenants."""

    primary: EmbeddedPostgres
    standby: EmbeddedPostgres
    primary_port: int
    standby_port: int
    owner: asyncpg.Pool  # superuser on the primary
    world: World

    def dsn(self, port: int, runtime: bool = False) -> str:
        """The superuser (or, with ``runtime``, the ``chat_app``) DSN of the test database on ``port``."""
        owner = EmbeddedPostgres.dsn(port, DATABASE)
        return runtime_dsn_from(owner, TEST_RUNTIME_PASSWORD) if runtime else owner

    @property
    def owner_dsn(self) -> str:
        """Superuser on the primary."""
        return self.dsn(self.primary_port)

    @property
    def standby_owner_dsn(self) -> str:
        """Superuser on the standby."""
        return self.dsn(self.standby_port)

    @property
    def runtime_dsn(self) -> str:
        """``chat_app`` on the primary."""
        return self.dsn(self.primary_port, runtime=True)

    @property
    def standby_runtime_dsn(self) -> str:
        """``chat_app`` on the standby."""
        return self.dsn(self.standby_port, runtime=True)

    def settings(self, **changes: Any) -> Settings:
        """The app on the primary with the standby as its read replica (``changes`` override)."""
        base = Settings(
            database_url=self.owner_dsn,
            app_database_url=self.runtime_dsn,
            app_read_database_url=self.standby_runtime_dsn,
            app_env="production",
            jwt_secret=TEST_JWT_SECRET,
            pool_min_size=1,
            pool_max_size=4,
            pool_timeout=5.0,
        )
        return replace(base, **changes)

    async def standby_sql(self, sql: str, *args: Any) -> Any:
        """One value of ``sql`` run on the standby as the superuser."""
        connection = await asyncpg.connect(self.standby_owner_dsn)
        try:
            return await connection.fetchval(sql, *args)
        finally:
            await connection.close()

    async def caught_up(self) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        position = await self.owner.fetchval("SELECT pg_current_wal_insert_lsn()")

        async def replayed() -> bool:
            return bool(await self.standby_sql("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", position))

        await until(replayed, "the standby to replay the primary's WAL")

    async def pause_replay(self) -> None:
        """Stop the standby replaying WAL (it keeps receiving it), until ``resume_replay``."""
        await self.standby_sql("SELECT pg_wal_replay_pause()")

        async def paused() -> bool:
            return str(await self.standby_sql("SELECT pg_get_wal_replay_pause_state()")) == "paused"

        await until(paused, "replay to pause")

    async def resume_replay(self) -> None:
        """Replay again."""
        await self.standby_sql("SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[EmbeddedPostgres, int, EmbeddedPostgres, int]]:
    """The embedded primary and its standby, running; stopped and removed after the run."""
    tmp = Path(tempfile.mkdtemp(prefix="chat-replica-pg-"))
    primary, standby = EmbeddedPostgres(tmp / "primary"), EmbeddedPostgres(tmp / "standby")
    try:
        primary_port = primary.start_port()

        async def create() -> None:
            connection = await asyncpg.connect(primary.dsn(primary_port))
            try:
                await connection.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await connection.close()
            owner = primary.dsn(primary_port, DATABASE)
            await upgrade(owner, runtime_dsn_from(owner, TEST_RUNTIME_PASSWORD))

        asyncio.run(create())
        standby.make_standby(primary_port)
        standby_port = standby.start_port()
        yield primary, primary_port, standby, standby_port
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
async def cluster(servers: tuple[EmbeddedPostgres, int, EmbeddedPostgres, int]) -> AsyncIterator[Cluster]:
    """The cluster with two tenants written on the primary and replayed by the standby."""
    primary, primary_port, standby, standby_port = servers
    owner = await asyncpg.create_pool(primary.dsn(primary_port, DATABASE), min_size=1, max_size=4)
    try:
        world = await make_world(owner, TEST_JWT_SECRET)
        found = Cluster(primary, standby, primary_port, standby_port, owner, world)
        await found.caught_up()
        yield found
    finally:
        await owner.close()


@pytest.fixture
async def fresh_world(cluster: Cluster) -> World:
    """Two tenants of this test alone (other tests write to the cluster's), replayed by the standby."""
    world = await make_world(cluster.owner, TEST_JWT_SECRET)
    await cluster.caught_up()
    return world


@pytest.fixture(autouse=True)
async def standby_restored(cluster: Cluster) -> AsyncIterator[None]:
    """After each test: the standby runs, replays and has caught up."""
    yield
    if not cluster.standby.running():
        await asyncio.to_thread(cluster.standby.start_port, cluster.standby_port)
    await cluster.resume_replay()
    await cluster.caught_up()
