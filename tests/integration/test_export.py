"""``GET /export``: NDJSON equal to what the routes answer, recorded for an admin, flat memory, freed on disconnect.

Correctness runs in-process; memory and disconnection against a real server
(``python -m app serve``), whose RSS and database connection are observed from outside.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from tests.conftest import TEST_JWT_SECRET
from tests.contract import SHAPES
from tests.factories import TestTenant, TestUser, World, create_session, create_tenant, create_user
from tests.integration.test_errors import app_log  # noqa: F401  # the fixture: records of the ``app`` logger
from tests.live import LiveServer, live_server, worker_pids

if TYPE_CHECKING:
    from tests.conftest import TestDatabase

NDJSON = "application/x-ndjson"


async def export(client: Any, tenant: TestTenant, user: TestUser, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(tenant.path("export"), params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(NDJSON)
    assert response.text == "" or response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


async def as_the_routes_answer(client: Any, tenant: TestTenant, user: TestUser, session_id: str) -> dict[str, Any]:
    """The session and its whole history as GET /sessions/{id} and GET …/messages answer them."""
    session = (await client.get(tenant.path(f"sessions/{session_id}"), headers=user.headers)).json()
    messages: list[dict[str, Any]] = []
    while True:
        page = (
            await client.get(
                tenant.path(f"sessions/{session_id}/messages"),
                params={"limit": 200, "offset": len(messages)},
                headers=user.headers,
            )
        ).json()
        messages += page["messages"]
        if not page["has_more"]:
            return {**session, "messages": messages}


async def test_lines_parse_and_equal_what_the_routes_answer(client, world: World) -> None:
    a = world.a
    lines = await export(client, a, a.alice)
    assert sorted(line["session_id"] for line in lines) == sorted(str(s) for s in a.sessions[a.alice.user_id])
    assert [line["created_at"] for line in lines] == sorted(line["created_at"] for line in lines)  # oldest first
    for line in lines:
        assert set(line) == SHAPES["SessionInfo"] | {"messages"}
        assert line == await as_the_routes_answer(client, a, a.alice, line["session_id"])
        assert len(line["messages"]) == line["message_count"] > 0
    # Naming oneself is the same export.
    assert await export(client, a, a.alice, user_id=str(a.alice.user_id)) == lines


async def test_an_admin_exports_one_user_recorded_once_per_session(client, world: World, owner) -> None:
    a = world.a
    lines = await export(client, a, a.admin, user_id=str(a.bob.user_id))
    assert sorted(line["session_id"] for line in lines) == sorted(str(s) for s in a.sessions[a.bob.user_id])
    rows = await owner.fetch("SELECT * FROM access_log WHERE tenant_id = $1", a.tenant_id)
    assert sorted(r["session_id"] for r in rows) == sorted(a.sessions[a.bob.user_id])
    assert {(r["action"], r["owner_id"], r["reader_id"]) for r in rows} == {("export", a.bob.user_id, a.admin.user_id)}
    # Their own export (with or without user_id) records nothing.
    own = await export(client, a, a.admin)
    assert [line["session_id"] for line in own] == [str(s) for s in a.sessions[a.admin.user_id]]
    assert await owner.fetchval("SELECT count(*) FROM access_log WHERE tenant_id = $1", a.tenant_id) == len(rows)


async def test_a_supporter_exports_only_themselves_and_nobody_another_tenant(client, world: World, owner) -> None:
    a, b = world.a, world.b
    response = await client.get(a.path("export"), params={"user_id": str(a.bob.user_id)}, headers=a.alice.headers)
    assert response.status_code == 403
    assert await export(client, a, a.admin, user_id=str(b.alice.user_id)) == []
    assert (await client.get(a.path("export"), params={"user_id": "x"}, headers=a.admin.headers)).status_code == 400
    assert (
        await owner.fetchval("SELECT count(*) FROM access_log WHERE tenant_id = ANY($1)", [a.tenant_id, b.tenant_id])
        == 0
    )


async def test_a_session_larger_than_a_chunk_and_a_fetch_is_exported_whole(client, owner) -> None:
    tenant_id, user = await big_session(owner, 450, content=320)  # > 200 rows a fetch, > 64 KB a chunk
    tenant = TestTenant(tenant_id, "big", user, user, user, {})
    empty = await create_session(owner, user, title="empty")  # created last: its line comes last
    big, last = await export(client, tenant, user)
    assert len(big["messages"]) == 450
    assert big == await as_the_routes_answer(client, tenant, user, big["session_id"])
    assert last == await as_the_routes_answer(client, tenant, user, str(empty))
    assert last["messages"] == []


async def test_a_commit_that_fails_after_the_body_is_logged_and_frees_the_connection(
    client,
    world: World,
    owner,
    app_log,  # noqa: F811  # the fixture imported above
) -> None:
    """The one window the docs name: the entries were written before the first byte, the commit fails after
    the last (a deferred trigger planted for this tenant), so the export went out and its entries are lost."""
    a = world.a
    await owner.execute(
        f"""CREATE FUNCTION public.test_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.tenant_id = '{a.tenant_id}' THEN RAISE EXCEPTION 'planted: the commit fails'; END IF;
                RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT ON access_log
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.test_fail_at_commit();"""
    )
    try:
        lines = await export(client, a, a.admin, user_id=str(a.alice.user_id))
    finally:
        await owner.execute(
            "DROP TRIGGER test_fail_at_commit ON access_log; DROP FUNCTION public.test_fail_at_commit()"
        )
    assert len(lines) == len(a.sessions[a.alice.user_id])
    assert any("did not commit" in record.getMessage() for record in app_log)
    assert await owner.fetchval("SELECT count(*) FROM access_log WHERE tenant_id = $1", a.tenant_id) == 0
    # The connection went back to the pool: the next requests are served (and recorded) as usual.
    assert len(await export(client, a, a.admin, user_id=str(a.alice.user_id))) == len(lines)
    assert await owner.fetchval("SELECT count(*) FROM access_log WHERE tenant_id = $1", a.tenant_id) == len(lines)


# -- a real server: memory and disconnection ------------------------------------------------------

MESSAGES = 10_000
CONTENT = 2_000  # characters per message: an export of about 20 MB


async def big_session(owner: asyncpg.Pool, messages: int, content: int = CONTENT) -> tuple[uuid.UUID, TestUser]:
    """A tenant of its own whose one user has one session of ``messages`` messages of ``content`` characters."""
    tenant_id = await create_tenant(owner)
    user = await create_user(owner, tenant_id, "supporter", TEST_JWT_SECRET)
    session_id = await create_session(owner, user, title="big")
    await owner.execute(
        """INSERT INTO messages (tenant_id, session_id, user_id, role, content, created_at)
           SELECT $1, $2, $3, 'user', repeat(md5(i::text), $4 / 32), clock_timestamp()
           FROM generate_series(1, $5) AS i""",
        tenant_id,
        session_id,
        user.user_id,
        content,
        messages,
    )
    return tenant_id, user


def env_for(database: TestDatabase) -> dict[str, str]:
    return {
        "DATABASE_URL": database.owner_dsn,
        "APP_DATABASE_URL": database.runtime_dsn,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DB_POOL_MAX_SIZE": "2",
        "DB_POOL_TIMEOUT": "2",
    }


def peak_rss_kb(server: LiveServer) -> int:
    """The serving process's peak resident set (VmHWM), in kB."""
    (pid,) = worker_pids(server)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")  # pragma: no cover


async def streamed_bytes(server: LiveServer, tenant_id: uuid.UUID, user: TestUser) -> int:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        http.stream("GET", f"/api/{tenant_id}/export", headers=user.headers) as response,
    ):
        assert response.status_code == 200
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
        return size


async def test_memory_stays_flat_for_a_10000_message_session(database, owner) -> None:
    small_tenant, small_user = await big_session(owner, 500)
    tenant_id, user = await big_session(owner, MESSAGES)
    with live_server(env_for(database)) as server:
        await streamed_bytes(server, small_tenant, small_user)  # warm: code paths, pools, buffers
        before = peak_rss_kb(server)
        size = await streamed_bytes(server, tenant_id, user)
        growth = peak_rss_kb(server) - before
    print(f"\nexport of {MESSAGES} messages: {size / 1e6:.1f} MB streamed, peak RSS grew {growth / 1024:.1f} MB")
    assert size > MESSAGES * CONTENT
    assert growth * 1024 < size / 4, f"peak RSS grew {growth} kB for a {size}-byte export"


async def test_a_client_that_leaves_mid_stream_frees_the_connection_at_once(database, owner) -> None:
    tenant_id, user = await big_session(owner, MESSAGES)
    with live_server(env_for(database)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            async with http.stream("GET", f"/api/{tenant_id}/export", headers=user.headers) as response:
                assert response.status_code == 200
                async for _chunk in response.aiter_raw():
                    break
                busy = await export_backends(owner)
                assert busy, "the export holds its transaction while it streams"
            left = time.monotonic()
            while await export_backends(owner):
                assert time.monotonic() - left < 2, "the export's transaction outlived its client"
                await asyncio.sleep(0.02)
            freed = time.monotonic() - left
            # The pool (2) is whole again: two requests at once are served.
            answers = await asyncio.gather(
                *(http.get(f"/api/{tenant_id}/sessions", headers=user.headers) for _ in range(2))
            )
    print(f"\nclient left mid-export: its transaction ended {freed * 1000:.0f} ms later")
    assert [a.status_code for a in answers] == [200, 200]


async def export_backends(owner: asyncpg.Pool) -> list[asyncpg.Record]:
    """Runtime-role backends inside a transaction (the export's, while it streams)."""
    return await owner.fetch(  # type: ignore[no-any-return]
        "SELECT pid, state FROM pg_stat_activity WHERE usename = 'chat_app' AND xact_start IS NOT NULL"
        " AND datname = current_database()"
    )
