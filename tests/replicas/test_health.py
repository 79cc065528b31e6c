"""A replica that is down, lags, bypasses RLS or is no standby of this primary: skipped, logged, never a failure.

The standby of the cluster is stopped and started again on the same port, its replay is
paused, or another server stands in for it. Figures are printed (``-s``); tests never
assert wall-clock times.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import httpx
import pytest

from app.db import replica as replica_module
from app.db.selfcheck import UnsafeRoleError
from tests.conftest import TestDatabase as Database
from tests.conftest import serve
from tests.factories import TestUser, World, create_session
from tests.polling import until
from tests.replicas.conftest import Cluster, Where

WORKERS = 6


async def answered_by_standby(http: httpx.AsyncClient, user: TestUser) -> bool:
    """True when the standby answered a read of ``user`` (a 200 from either server, else the test fails)."""
    response = await http.get(f"/api/{user.tenant_id}/where", headers=user.headers)
    assert response.status_code == 200, response.text
    return bool(response.json()["standby"])


def replica_lines(records: list[logging.LogRecord]) -> list[str]:
    """What the replica's health logged."""
    return [r.getMessage() for r in records if r.name == "app.db.replica"]


async def test_the_standby_stopped_mid_run_reads_answer_200_from_the_primary_then_from_it_again(
    cluster: Cluster, fresh_world: World, app_log: list[logging.LogRecord]
) -> None:
    a, b = fresh_world.a, fresh_world.b
    callers = [(a, a.alice), (a, a.admin), (b, b.bob), (b, b.admin)]
    statuses: Counter[int] = Counter()
    foreign: list[str] = []
    stop = asyncio.Event()
    async with serve(cluster.settings(), (Where,)) as http:

        async def load(index: int) -> None:
            tenant, user = callers[index % len(callers)]
            own = {str(s) for s in (tenant.all_session_ids if user.role == "admin" else tenant.sessions[user.user_id])}
            for _ in range(20_000):  # bounded in count as well as in time
                if stop.is_set():
                    return
                response = await http.get(tenant.path(), headers=user.headers, params={"limit": 100})
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    foreign.extend(s["session_id"] for s in response.json()["sessions"] if s["session_id"] not in own)

        async with asyncio.timeout(120):
            workers = [asyncio.create_task(load(i)) for i in range(WORKERS)]
            assert await answered_by_standby(http, a.alice)
            await until(lambda: statuses.total() >= 50, "50 reads through the standby")
            stopping = time.monotonic()
            await asyncio.to_thread(cluster.standby.stop)
            before = statuses.total()
            await until(lambda: statuses.total() >= before + 50, "50 reads while the standby is down")
            assert not await answered_by_standby(http, a.alice)
            ready = await http.get("/ready")
            down_for = time.monotonic() - stopping
            await asyncio.to_thread(cluster.standby.start_port, cluster.standby_port)
            restarted = time.monotonic()

            async def standby_again() -> bool:
                return await answered_by_standby(http, a.alice)

            await until(standby_again, "reads on the standby again")
            back_after = time.monotonic() - restarted
            before = statuses.total()
            await until(lambda: statuses.total() >= before + 50, "50 reads after the standby returned")
            stop.set()
            await asyncio.gather(*workers)
    print(
        f"\n{statuses.total()} reads by {WORKERS} workers, statuses {dict(statuses)}; standby down {down_for:.1f} s, "
        f"back in use {back_after:.2f} s after its restart"
    )
    assert set(statuses) == {200}
    assert not foreign
    assert ready.status_code == 200  # /ready reports the primary
    lines = replica_lines(app_log)
    skipped = [line for line in lines if line.startswith("read replica skipped")]
    assert skipped, lines
    assert all(line.startswith("read replica skipped, reads go to the primary: ") for line in skipped)
    assert all(line.endswith("; lag unknown") for line in skipped)  # unreachable: no lag can be measured
    assert lines[-1].startswith("read replica in use: lag ")
    assert len(lines) <= 6  # a few lines for the outage, never one per request or per check


async def test_a_read_in_flight_when_the_standby_stops_is_served_again_by_the_primary(cluster: Cluster) -> None:
    a = cluster.world.a
    async with serve(cluster.settings(), (Where,)) as http:
        assert await answered_by_standby(http, a.alice)
        read = asyncio.create_task(http.get(a.path("where/slow"), headers=a.alice.headers))

        async def sleeping_on_standby() -> bool:
            found = await cluster.standby_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'chat_app' AND query LIKE '%pg_sleep%'"
            )
            return bool(found)

        await until(sleeping_on_standby, "the read to run on the standby")
        await asyncio.to_thread(cluster.standby.stop)  # fast shutdown: the read's backend is terminated
        response = await read
    assert response.status_code == 200, response.text
    assert response.json() == {"standby": False, "read_only": False}


async def test_a_read_the_standby_cancels_for_a_conflict_with_recovery_is_served_by_the_primary(
    cluster: Cluster, app_log: list[logging.LogRecord]
) -> None:
    # With max_standby_streaming_delay = 0 the standby cancels a read as soon as replay needs its lock.
    await cluster.standby_sql("ALTER SYSTEM SET max_standby_streaming_delay = 0")
    await cluster.standby_sql("SELECT pg_reload_conf()")
    a = cluster.world.a
    try:
        async with serve(cluster.settings(), (Where,)) as http:
            read = asyncio.create_task(http.get(a.path("where/holding-a-lock"), headers=a.alice.headers))

            async def sleeping_on_standby() -> bool:
                found = await cluster.standby_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'chat_app' AND query LIKE '%pg_sleep%'"
                )
                return bool(found)

            await until(sleeping_on_standby, "the read to hold its lock on the standby")
            async with cluster.owner.acquire() as connection, connection.transaction():
                await connection.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")  # replayed on the standby
            response = await read
    finally:
        await cluster.standby_sql("ALTER SYSTEM RESET max_standby_streaming_delay")
        await cluster.standby_sql("SELECT pg_reload_conf()")
    assert response.status_code == 200, response.text
    assert response.json() == {"standby": False, "read_only": False}
    assert any("conflict with recovery" in r.getMessage() for r in app_log)


async def test_a_read_whose_commit_fails_on_the_standby_keeps_its_answer(
    cluster: Cluster, app_log: list[logging.LogRecord]
) -> None:
    a = cluster.world.a
    async with serve(cluster.settings(), (Where,)) as http:
        read = asyncio.create_task(http.get(a.path("where/pause"), headers=a.alice.headers))

        async def idle_in_transaction_on_standby() -> bool:
            found = await cluster.standby_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'chat_app' "
                "AND state = 'idle in transaction' AND query LIKE '%pg_is_in_recovery%'"  # after the read's last query
            )
            return bool(found)

        await until(idle_in_transaction_on_standby, "the read's backend, idle in transaction, to be ended")
        response = await read
    assert response.status_code == 200
    assert response.json() == {"standby": True, "read_only": True}  # the standby's answer, not a retry
    assert any(r.getMessage().startswith("the replica failed at the end of a read, answered anyway") for r in app_log)


async def test_a_request_that_meets_the_standby_gone_before_a_check_does_skips_it(
    cluster: Cluster, app_log: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replica_module, "CHECK_SECONDS", 3600.0)  # no health check after the first one
    a = cluster.world.a
    async with serve(cluster.settings(), (Where,)) as http:
        assert await answered_by_standby(http, a.alice)
        await asyncio.to_thread(cluster.standby.stop)
        first = await answered_by_standby(http, a.alice)
        second = await answered_by_standby(http, a.alice)
    assert [first, second] == [False, False]
    [skipped] = [line for line in replica_lines(app_log) if "skipped" in line]
    assert skipped.startswith("read replica skipped, reads go to the primary: unreachable (")


async def test_a_lagging_standby_is_skipped_then_used_again_once_it_catches_up(
    cluster: Cluster, app_log: list[logging.LogRecord]
) -> None:
    a = cluster.world.a
    async with serve(cluster.settings(replica_max_lag_ms=300), (Where,)) as http:
        assert await answered_by_standby(http, a.alice)
        await cluster.pause_replay()

        async def skipped() -> bool:
            await create_session(cluster.owner, a.bob, title="moves the primary's WAL on")
            return not await answered_by_standby(http, a.alice)

        await until(skipped, "the lagging standby to be skipped")
        await cluster.resume_replay()

        async def standby_again() -> bool:
            return await answered_by_standby(http, a.alice)

        await until(standby_again, "the standby in use again")
    lines = replica_lines(app_log)
    lagging = [line for line in lines if "DB_REPLICA_MAX_LAG_MS" in line]
    assert len(lagging) == 1, lines
    assert lagging[0].startswith(
        "read replica skipped, reads go to the primary: behind the primary by more than DB_REPLICA_MAX_LAG_MS=300; lag "
    )
    assert int(lagging[0].split("; lag ")[1].removesuffix(" ms")) > 300
    assert lines[-1].startswith("read replica in use: lag ")


async def test_a_standby_down_at_start_up_does_not_stop_the_server_and_is_used_once_it_runs(
    cluster: Cluster, fresh_world: World, app_log: list[logging.LogRecord]
) -> None:
    a = fresh_world.a
    await asyncio.to_thread(cluster.standby.stop)
    async with serve(cluster.settings(), (Where,)) as http:
        ready = await http.get("/ready")
        listed = await http.get(a.path(), headers=a.alice.headers)
        on_standby = await answered_by_standby(http, a.alice)
        await asyncio.to_thread(cluster.standby.start_port, cluster.standby_port)

        async def standby_again() -> bool:
            return await answered_by_standby(http, a.alice)

        await until(standby_again, "the standby in use once it runs")
    assert ready.status_code == 200
    assert listed.status_code == 200
    assert len(listed.json()["sessions"]) == len(a.sessions[a.alice.user_id])
    assert not on_standby
    lines = replica_lines(app_log)
    assert lines[0].startswith("read replica skipped, reads go to the primary: unreachable (")
    assert lines[-1].startswith("read replica in use: lag ")


async def test_a_standby_reached_as_a_role_that_bypasses_rls_stops_the_server_from_starting(cluster: Cluster) -> None:
    with pytest.raises(BaseExceptionGroup) as refused:
        async with serve(cluster.settings(app_read_database_url=cluster.standby_owner_dsn)):
            pass
    assert refused.group_contains(UnsafeRoleError, match="'postgres' is a superuser and has BYPASSRLS", depth=None)


async def test_a_bypassing_role_met_after_an_outage_keeps_the_replica_out_of_use(
    cluster: Cluster, app_log: list[logging.LogRecord]
) -> None:
    a = cluster.world.a
    await asyncio.to_thread(cluster.standby.stop)
    async with serve(cluster.settings(app_read_database_url=cluster.standby_owner_dsn), (Where,)) as http:
        await asyncio.to_thread(cluster.standby.start_port, cluster.standby_port)
        await until(lambda: any("refused" in line for line in replica_lines(app_log)), "the refusal")
        on_standby = [await answered_by_standby(http, a.alice) for _ in range(3)]
    assert on_standby == [False] * 3
    [refused] = [line for line in replica_lines(app_log) if "refused" in line]
    assert "refused, never used until a restart: refusing to start: database role 'postgres' is a superuser" in refused


async def test_a_server_that_is_no_standby_is_never_used(cluster: Cluster, app_log: list[logging.LogRecord]) -> None:
    async with serve(cluster.settings(app_read_database_url=cluster.runtime_dsn), (Where,)) as http:
        on_standby = await answered_by_standby(http, cluster.world.a.alice)
    assert not on_standby
    assert replica_lines(app_log) == [
        "read replica skipped, reads go to the primary: not a standby (pg_is_in_recovery() is false); lag unknown"
    ]


async def test_a_server_of_another_cluster_is_never_used(
    cluster: Cluster, database: Database, app_log: list[logging.LogRecord]
) -> None:
    async with serve(cluster.settings(app_read_database_url=database.runtime_dsn), (Where,)) as http:
        on_standby = await answered_by_standby(http, cluster.world.a.alice)
    assert not on_standby
    assert replica_lines(app_log) == [
        "read replica skipped, reads go to the primary: not a standby of this primary (another system identifier); "
        "lag unknown"
    ]


async def test_with_every_replica_connection_busy_a_read_goes_to_the_primary(cluster: Cluster) -> None:
    a = cluster.world.a
    # The replica may take half of DB_POOL_TIMEOUT (0.25 s) to hand out a connection; the slow read holds it 0.5 s.
    async with serve(cluster.settings(pool_max_size=1, pool_timeout=0.5), (Where,)) as http:
        assert await answered_by_standby(http, a.alice)
        slow = asyncio.create_task(http.get(a.path("where/slow"), headers=a.alice.headers))

        async def sleeping_on_standby() -> bool:
            found = await cluster.standby_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'chat_app' AND query LIKE '%pg_sleep%'"
            )
            return bool(found)

        await until(sleeping_on_standby, "the slow read to hold the replica's only connection")
        meanwhile = await answered_by_standby(http, cluster.world.b.alice)  # another tenant: its share is free
        held = await slow
    assert not meanwhile
    assert held.json() == {"standby": True, "read_only": True}


async def test_with_the_primary_down_the_standby_still_answers_reads(
    cluster: Cluster, app_log: list[logging.LogRecord]
) -> None:
    a = cluster.world.a
    async with serve(cluster.settings(), (Where,)) as http:
        assert await answered_by_standby(http, a.alice)
        await asyncio.to_thread(cluster.primary.stop)
        try:
            ready = await http.get("/ready")
            write = await http.post(a.path("sessions"), headers=a.alice.headers, json={})
            await asyncio.sleep(2.5)  # two health checks without the primary
            read = await http.get(a.path(), headers=a.alice.headers)
            on_standby = await answered_by_standby(http, a.alice)
        finally:
            await asyncio.to_thread(cluster.primary.start_port, cluster.primary_port)
    assert ready.status_code == 503
    assert write.status_code == 503
    assert read.status_code == 200
    assert on_standby
    assert not [line for line in replica_lines(app_log) if "skipped" in line]
