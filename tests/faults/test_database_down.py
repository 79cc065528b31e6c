"""The database stops under load, then comes back: fast 503s and ``/ready`` 503, then recovery without a restart.

A dedicated embedded PostgreSQL (its own temp dir and port) is stopped and restarted on the
same port, so the rest of the suite keeps its database. Figures are printed (``-s``);
tests never assert wall-clock times.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from app.db.embedded import EmbeddedPostgres
from app.db.upgrade import upgrade
from app.settings import Settings, runtime_dsn_from
from tests.conftest import TEST_JWT_SECRET, TEST_RUNTIME_PASSWORD, serve
from tests.factories import World, make_world
from tests.polling import until

WORKERS = 8
SAMPLE = 40  # answers to wait for in each phase


@dataclass
class Dedicated:
    """The dedicated server, its port and the app's settings on it."""

    server: EmbeddedPostgres
    port: int
    settings: Settings
    world: World


@pytest.fixture
async def dedicated() -> AsyncIterator[Dedicated]:
    """An upgraded database with two tenants on a server of its own."""
    tmp = Path(tempfile.mkdtemp(prefix="chat-down-pg-"))
    server = EmbeddedPostgres(tmp / "pgdata")
    port = await asyncio.to_thread(server.start_port)
    owner_dsn = server.dsn(port)
    runtime_dsn = runtime_dsn_from(owner_dsn, TEST_RUNTIME_PASSWORD)
    try:
        await upgrade(owner_dsn, runtime_dsn)
        owner = await asyncpg.create_pool(owner_dsn, min_size=1, max_size=2)
        try:
            world = await make_world(owner, TEST_JWT_SECRET)
        finally:
            await owner.close()
        settings = Settings(
            database_url=owner_dsn,
            app_database_url=runtime_dsn,
            jwt_secret=TEST_JWT_SECRET,
            pool_min_size=2,
            pool_max_size=4,
            pool_timeout=5.0,  # generous under a loaded CI; while the server is down connects fail at once
        )
        yield Dedicated(server, port, settings, world)
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Outcome:
    """One request of the load: when it started and ended, and its status."""

    started: float
    ended: float
    status: int
    retry_after: str | None
    foreign: bool


async def test_database_stopped_under_load_gives_fast_503s_then_recovers_without_restart(
    dedicated: Dedicated,
) -> None:
    world = dedicated.world
    callers = [(world.a, world.a.alice), (world.a, world.a.admin), (world.b, world.b.bob), (world.b, world.b.admin)]
    outcomes: list[Outcome] = []
    stop = asyncio.Event()
    async with serve(dedicated.settings) as http:

        async def load(index: int) -> None:
            tenant, user = callers[index % len(callers)]
            own = tenant.all_session_ids if user.role == "admin" else set(tenant.sessions[user.user_id])
            for _ in range(5000):  # bounded in count as well as in time
                if stop.is_set():
                    return
                started = time.monotonic()
                response = await http.get(tenant.path(), headers=user.headers, params={"limit": 100})
                foreign = response.status_code == 200 and any(
                    s["session_id"] not in {str(i) for i in own} for s in response.json()["sessions"]
                )
                outcomes.append(
                    Outcome(
                        started, time.monotonic(), response.status_code, response.headers.get("retry-after"), foreign
                    )
                )
                await asyncio.sleep(0.005)

        def answered(since: float, status: int | None = None) -> int:
            """How many requests started at ``since`` or later have been answered (with ``status``)."""
            return sum(o.started >= since and status in (None, o.status) for o in outcomes)

        async with asyncio.timeout(120):
            began = time.monotonic()
            workers = [asyncio.create_task(load(i)) for i in range(WORKERS)]
            await until(lambda: answered(began, 200) >= SAMPLE, f"{SAMPLE} answers before the stop")
            stopping = time.monotonic()
            await asyncio.to_thread(dedicated.server.stop)
            stopped = time.monotonic()
            await until(lambda: answered(stopped) >= SAMPLE, f"{SAMPLE} answers while the database is down")
            ready_down = await http.get("/ready")
            restarting = time.monotonic()
            await asyncio.to_thread(dedicated.server.start_port, dedicated.port)
            restarted = time.monotonic()

            def first_ok() -> float | None:
                return next((o.ended for o in outcomes if o.started >= restarted and o.status == 200), None)

            await until(lambda: first_ok() is not None, "a 200 after the restart")
            recovered = first_ok() or restarted
            await until(lambda: answered(recovered + 0.5) >= SAMPLE, f"{SAMPLE} answers after the recovery")
            ready_up = await http.get("/ready")
            stop.set()
            await asyncio.gather(*workers)

    statuses = {o.status for o in outcomes}
    down = [o for o in outcomes if o.started >= stopped and o.ended <= restarting]
    down_latency = sorted(o.ended - o.started for o in down)
    tail = [o for o in outcomes if o.started >= recovered + 0.5]
    print(
        f"\n{len(outcomes)} requests by {WORKERS} workers; statuses "
        f"{ {s: sum(o.status == s for o in outcomes) for s in sorted(statuses)} }"
        f"\npg_ctl stop took {stopped - stopping:.2f} s; while down: {len(down)} requests, all 503, "
        f"p50 {statistics.median(down_latency) * 1000:.1f} ms, max {down_latency[-1] * 1000:.1f} ms"
        f"\nrestart took {restarted - restarting:.2f} s; first 200 {recovered - restarted:.3f} s after it"
    )
    assert statuses <= {200, 503}, statuses
    assert not any(o.foreign for o in outcomes)
    assert down
    assert {o.status for o in down} == {503}
    assert all(o.retry_after == "1" for o in outcomes if o.status == 503)
    assert ready_down.status_code == 503
    assert tail
    assert {o.status for o in tail} == {200}
    assert ready_up.status_code == 200
