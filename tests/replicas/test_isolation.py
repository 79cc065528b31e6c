"""Tenant isolation on the standby is the primary's: the same policies, the same role, the same answers.

Directly as the runtime role on both servers (no context, each user's context, a context
naming another tenant's user, row security switched off), and the randomized cross-tenant
campaign of the attack suite sent through an app whose reads run on the standby.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from app.db.context import set_context
from tests.conftest import serve
from tests.factories import World
from tests.polling import until
from tests.replicas.conftest import Cluster, Where
from tests.security import test_campaign
from tests.security.test_tenant_isolation import TENANT_TABLES

# The attack suite's campaign, collected here with this module's ``client`` (reads on the standby) and ``victims``.
test_the_cross_tenant_campaign_through_the_standby_never_leaks = test_campaign.test_random_cross_tenant_reads_never_leak

COMMITTED = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"


@pytest.fixture
def victims(fresh_world: World) -> World:
    """Tenants of the campaign alone (written on the primary, replayed by the standby)."""
    return fresh_world


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the standby as its read replica; afterwards, proof that the standby served the reads."""
    before = await cluster.standby_sql(COMMITTED)
    async with serve(cluster.settings(), (Where,)) as http:
        where = await http.get(cluster.world.a.path("where"), headers=cluster.world.a.alice.headers)
        assert where.json()["standby"] is True
        yield http
        where = await http.get(cluster.world.a.path("where"), headers=cluster.world.a.alice.headers)
        assert where.json()["standby"] is True

    async def served() -> bool:  # the app's connections closed: their statistics reached the standby's
        return bool(await cluster.standby_sql(COMMITTED) - before >= 500)

    await until(served, "the standby to count the campaign's transactions")


async def visible(dsn: str, world: World) -> dict[str, object]:
    """What the runtime role sees on ``dsn``: per table, without context and with each user's context."""
    connection = await asyncpg.connect(dsn)
    seen: dict[str, object] = {}
    try:
        for table in TENANT_TABLES:
            seen[f"{table} without context"] = await connection.fetchval(f"SELECT count(*) FROM {table}")
        for tenant, other in ((world.a, world.b), (world.b, world.a)):
            for user in (tenant.admin, tenant.alice, tenant.bob):
                async with connection.transaction(readonly=True):
                    seen[f"{user.email} is a user"] = await set_context(connection, tenant.tenant_id, user.user_id)
                    for table in TENANT_TABLES:
                        rows = await connection.fetch(f"SELECT tenant_id FROM {table}")
                        seen[f"{table} as {user.email}"] = (len(rows), {r["tenant_id"] for r in rows})
                    sessions = await connection.fetch("SELECT session_id FROM sessions ORDER BY 1")
                    seen[f"sessions of {user.email}"] = [r["session_id"] for r in sessions]
                async with connection.transaction(readonly=True):
                    # The other tenant's user named with this tenant: not a user; no row of either tenant.
                    seen[f"{other.alice.email} in {tenant.name}"] = await set_context(
                        connection, tenant.tenant_id, other.alice.user_id
                    )
                    foreign = await connection.fetchval(
                        "SELECT count(*) FROM sessions WHERE tenant_id = $1", other.tenant_id
                    )
                    seen[f"{other.name} sessions from {tenant.name}"] = foreign
        await connection.execute("SET row_security = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.fetchval("SELECT count(*) FROM sessions")
    finally:
        await connection.close()
    return seen


async def test_the_runtime_role_sees_on_the_standby_exactly_what_it_sees_on_the_primary(
    cluster: Cluster, fresh_world: World
) -> None:
    world = fresh_world
    primary, standby = await asyncio.gather(
        visible(cluster.runtime_dsn, world), visible(cluster.standby_runtime_dsn, world)
    )
    assert standby == primary
    for table in TENANT_TABLES:
        assert standby[f"{table} without context"] == 0
    for tenant in (world.a, world.b):
        for user in (tenant.admin, tenant.alice, tenant.bob):
            assert standby[f"sessions as {user.email}"][1] == {tenant.tenant_id}  # type: ignore[index]
        readable = sorted(tenant.sessions[tenant.alice.user_id])
        assert standby[f"sessions of {tenant.alice.email}"] == readable
        assert standby[f"sessions of {tenant.admin.email}"] == sorted(tenant.all_session_ids)
    assert standby[f"{world.b.alice.email} in {world.a.name}"] is None
    assert standby[f"{world.b.name} sessions from {world.a.name}"] == 0
