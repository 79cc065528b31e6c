"""Reads on the standby, writes on the primary, read-your-writes with ``X-Read-After``: a real primary and standby."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from piccolo.querystring import QueryString

from app.db.context import set_context
from app.db.replica import parse_lsn
from app.messages import queries as message_queries
from app.sessions import queries as session_queries
from app.users.schemas import UserInfo
from tests.conftest import serve
from tests.factories import TestTenant, TestUser, create_user
from tests.replicas.conftest import Cluster, Where


async def where(http: httpx.AsyncClient, user: TestUser, route: str = "where", **headers: str) -> dict[str, bool]:
    """Which server answered ``route`` for ``user``: ``{standby, read_only}``."""
    response = await http.get(f"/api/{user.tenant_id}/{route}", headers=user.headers | headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_reads_run_read_only_on_the_standby_and_writes_on_the_primary(cluster: Cluster) -> None:
    a = cluster.world.a
    async with serve(cluster.settings(), (Where,)) as http:
        read = await where(http, a.alice)
        written = await http.post(a.path("where"), headers=a.alice.headers)
        always = await where(http, a.alice, "where/reads-write")
        by_admin = await where(http, a.admin, "where/admin-reads-write")
        by_supporter = await where(http, a.alice, "where/admin-reads-write")
    assert read == {"standby": True, "read_only": True}
    assert written.json() == {"standby": False, "read_only": False}
    assert always == {"standby": False, "read_only": False}
    assert by_admin == {"standby": False, "read_only": False}
    assert by_supporter == {"standby": True, "read_only": True}


def reads_of(tenant: TestTenant, user: TestUser, foreign: TestTenant) -> list[str]:
    """Every GET a user can send: own and foreign sessions, pages, parameters, other tenants' paths."""
    sessions = sorted(tenant.all_session_ids | foreign.all_session_ids)
    urls = [
        tenant.path("sessions"),
        tenant.path("sessions?limit=2&offset=1&sort_by=created_at&order=asc"),
        tenant.path(f"sessions?user_id={tenant.alice.user_id}"),
        tenant.path(f"sessions?user_id={foreign.alice.user_id}"),
        tenant.path(f"sessions?archived=all&pinned=false&agent_id={tenant.agents['DebtAgent']}&limit=1"),
        tenant.path("users"),
        tenant.path("agents"),
        tenant.path("me"),
        foreign.path("sessions"),
        foreign.path("me"),
    ]
    for session_id in sessions:
        urls += [tenant.path(f"sessions/{session_id}"), tenant.path(f"sessions/{session_id}/messages?limit=2")]
        urls.append(tenant.path(f"sessions/{session_id}/messages?limit=1&order=desc"))
        urls.append(foreign.path(f"sessions/{session_id}/messages"))
    return urls


async def test_every_get_answers_identically_from_the_standby_and_from_the_primary(cluster: Cluster) -> None:
    world = cluster.world
    answers: dict[bool, list[tuple[int, Any]]] = {}
    for replica in (True, False):
        settings = cluster.settings() if replica else cluster.settings(app_read_database_url=None)
        async with serve(settings, (Where,)) as http:
            assert (await where(http, world.a.alice))["standby"] is replica
            answers[replica] = []
            for tenant, foreign in ((world.a, world.b), (world.b, world.a)):
                for user in (tenant.admin, tenant.alice, tenant.bob):
                    for url in reads_of(tenant, user, foreign):
                        response = await http.get(url, headers=user.headers)
                        answers[replica].append((response.status_code, response.json()))
    statuses = {status for status, _ in answers[True]}
    assert statuses == {200, 403, 404}, statuses  # the cross-tenant and cross-user probes were refused
    assert answers[True] == answers[False]


async def test_without_x_read_after_a_read_may_lag_and_with_it_sees_the_write(cluster: Cluster) -> None:
    a = cluster.world.a
    async with serve(cluster.settings(), (Where,)) as http:
        await cluster.pause_replay()
        created = await http.post(a.path("sessions"), headers=a.alice.headers, json={"title": "written while paused"})
        position = created.headers["x-read-after"]
        session_id = created.json()["session_id"]
        stale = await http.get(a.path(f"sessions/{session_id}"), headers=a.alice.headers)
        fresh = await http.get(a.path(f"sessions/{session_id}"), headers=a.alice.headers | {"X-Read-After": position})
        answered_by = await where(http, a.alice, **{"X-Read-After": position})
        await cluster.resume_replay()
        await cluster.caught_up()
        caught_up_by = await where(http, a.alice, **{"X-Read-After": position})
        after = await http.get(a.path(f"sessions/{session_id}"), headers=a.alice.headers | {"X-Read-After": position})
    assert created.status_code == 201
    assert stale.status_code == 404  # the standby had not replayed the write: this read lagged
    assert fresh.status_code == 200  # the primary answered the read that named the write's position
    assert fresh.json()["title"] == "written while paused"
    assert answered_by == {"standby": False, "read_only": False}
    assert caught_up_by == {"standby": True, "read_only": True}
    assert after.json() == fresh.json()


async def test_every_kind_of_write_is_seen_by_the_next_read_that_names_its_position(cluster: Cluster) -> None:
    a = cluster.world.a
    session_id = sorted(a.sessions[a.bob.user_id])[0]
    doomed = sorted(a.sessions[a.bob.user_id])[1]
    session = a.path(f"sessions/{session_id}")
    async with serve(cluster.settings(), (Where,)) as http:
        await cluster.pause_replay()
        renamed = await http.patch(session, headers=a.bob.headers, json={"title": "renamed while paused"})
        posted = await http.post(f"{session}/messages", headers=a.bob.headers, json={"role": "user", "content": "new"})
        deleted = await http.delete(a.path(f"sessions/{doomed}"), headers=a.bob.headers)
        positions = [parse_lsn(r.headers["x-read-after"]) for r in (renamed, posted, deleted)]
        latest = {"X-Read-After": deleted.headers["x-read-after"]}
        stale = [
            await http.get(session, headers=a.bob.headers),
            await http.get(f"{session}/messages", headers=a.bob.headers),
            await http.get(a.path(f"sessions/{doomed}"), headers=a.bob.headers),
        ]
        fresh = [
            await http.get(session, headers=a.bob.headers | latest),
            await http.get(f"{session}/messages", headers=a.bob.headers | latest),
            await http.get(a.path(f"sessions/{doomed}"), headers=a.bob.headers | latest),
        ]
    assert [renamed.status_code, posted.status_code, deleted.status_code] == [200, 201, 204]
    assert positions == sorted(positions)  # each write's position is at or past the one before
    assert positions[0] < positions[1] < positions[2]
    assert stale[0].json()["title"] != "renamed while paused"
    assert "new" not in [m["content"] for m in stale[1].json()["messages"]]
    assert stale[2].status_code == 200
    assert fresh[0].json()["title"] == "renamed while paused"
    assert fresh[1].json()["messages"][-1]["content"] == "new"
    assert fresh[2].status_code == 404


async def test_the_position_covers_the_commit_as_the_primary_reports_it(cluster: Cluster) -> None:
    a = cluster.world.a
    async with serve(cluster.settings()) as http:
        before = await cluster.owner.fetchval("SELECT pg_current_wal_insert_lsn()")
        created = await http.post(a.path("sessions"), headers=a.alice.headers, json={"title": "position"})
        after = await cluster.owner.fetchval("SELECT pg_current_wal_insert_lsn()")
        read = await http.get(a.path("sessions"), headers=a.alice.headers)
        refused = await http.patch(
            a.path(f"sessions/{uuid.uuid4()}"), headers=a.alice.headers, json={"title": "nothing"}
        )
        invalid = await http.post(a.path("sessions"), headers=a.alice.headers, json={"title": 5})
    position = parse_lsn(created.headers["x-read-after"])
    assert before < position <= after
    assert created.headers["x-read-after"] == f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"
    assert "x-read-after" not in read.headers  # a read writes nothing
    assert refused.status_code == 404
    assert "x-read-after" not in refused.headers  # nor does a write that was refused (rolled back)
    assert invalid.status_code == 400
    assert "x-read-after" not in invalid.headers


async def test_a_committed_write_whose_position_cannot_be_read_answers_without_the_header(
    cluster: Cluster, app_log: list[logging.LogRecord]
) -> None:
    # Pointed at a standby as its primary, the app commits a POST that only reads; the position query then fails.
    a = cluster.world.a
    async with serve(
        cluster.settings(app_database_url=cluster.standby_runtime_dsn, app_read_database_url=None), (Where,)
    ) as http:
        response = await http.post(a.path("where"), headers=a.alice.headers)
    assert response.status_code == 200
    assert response.json() == {"standby": True, "read_only": True}
    assert "x-read-after" not in response.headers
    [line] = [r.getMessage() for r in app_log if "X-Read-After" in r.getMessage()]
    assert line.startswith("committed, but the WAL position for X-Read-After could not be read: ")
    assert "recovery is in progress" in line


@pytest.mark.parametrize("value", ["", "abc", "0/", "/0", "1/2/3", "0x1/0", "123456789/0", "０/1", "1/-1", "1 /2"])
async def test_a_malformed_x_read_after_is_a_400_naming_it(cluster: Cluster, value: str) -> None:
    a = cluster.world.a
    async with serve(cluster.settings()) as http:
        # As bytes: a client may send any octets (httpx refuses non-ASCII text).
        token = a.alice.headers["Authorization"].encode()
        response = await http.get(a.path(), headers={b"Authorization": token, b"X-Read-After": value.encode()})
        unauthenticated = await http.get(a.path(), headers={b"X-Read-After": value.encode()})
    assert response.status_code == 400
    assert response.json()["detail"] == ("X-Read-After must be a WAL position as the server sent it, such as 0/16B3748")
    assert response.json()["extra"] == [
        {
            "key": "X-Read-After",
            "message": "must be a WAL position as the server sent it, such as 0/16B3748",
            "source": "header",
        }
    ]
    assert unauthenticated.status_code == 401  # the token is checked first


async def test_a_position_the_standby_never_reached_sends_the_read_to_the_primary(cluster: Cluster) -> None:
    a = cluster.world.a
    async with serve(cluster.settings(), (Where,)) as http:
        future = await where(http, a.alice, **{"X-Read-After": "FFFFFFFF/FFFFFFFF"})
        lower_case = await where(http, a.alice, **{"X-Read-After": "0/1a"})
    assert future == {"standby": False, "read_only": False}
    assert lower_case == {"standby": True, "read_only": True}


async def test_a_user_the_standby_does_not_know_yet_is_served_by_the_primary(cluster: Cluster) -> None:
    a = cluster.world.a
    async with serve(cluster.settings(), (Where,)) as http:
        await cluster.pause_replay()
        newcomer = await create_user(cluster.owner, a.tenant_id, "supporter", cluster.world.secret)
        me = await http.get(a.path("me"), headers=newcomer.headers)
        answered_by = await where(http, newcomer)
    assert me.status_code == 200
    assert me.json()["user_id"] == str(newcomer.user_id)
    assert answered_by == {"standby": False, "read_only": False}


class WritesInARead(Controller):
    """Test-only GET routes that try each write path of the queries modules (in a read's transaction)."""

    path = "/writes-in-a-read"

    @get("/create-session")
    async def create_session(self, user: NamedDependency[UserInfo]) -> None:
        await session_queries.create_session(user.tenant_id, user.user_id, "written by a read", None)

    @get("/rename/{session_id:uuid}")
    async def rename(self, user: NamedDependency[UserInfo], session_id: FromPath[uuid.UUID]) -> None:
        await session_queries.update_session(
            user.tenant_id, session_id, user.user_id, session_queries.Change(set_title=True, title="renamed by a read")
        )

    @get("/delete/{session_id:uuid}")
    async def delete(self, user: NamedDependency[UserInfo], session_id: FromPath[uuid.UUID]) -> None:
        await session_queries.delete_session(user.tenant_id, session_id, user.user_id)

    @get("/add-message/{session_id:uuid}")
    async def add_message(self, user: NamedDependency[UserInfo], session_id: FromPath[uuid.UUID]) -> None:
        await message_queries.add_message(user.tenant_id, session_id, user.user_id, "user", "written by a read")


async def test_a_read_only_transaction_on_the_standby_refuses_every_write_path(
    cluster: Cluster, app_log: list[logging.LogRecord]
) -> None:
    a = cluster.world.a
    own = sorted(a.sessions[a.alice.user_id])[0]
    routes = ["create-session", f"rename/{own}", f"delete/{own}", f"add-message/{own}"]
    counts = "SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM messages) AS messages"
    before = dict(await cluster.owner.fetchrow(counts))
    async with serve(cluster.settings(), (WritesInARead,)) as http:
        answers = [await http.get(a.path(f"writes-in-a-read/{route}"), headers=a.alice.headers) for route in routes]
    assert [r.status_code for r in answers] == [500] * 4
    assert all(r.json() == {"status_code": 500, "detail": "Internal Server Error"} for r in answers)
    refusals = [r for r in app_log if r.exc_info and r.exc_info[0] is asyncpg.ReadOnlySQLTransactionError]
    assert len(refusals) == 4
    assert dict(await cluster.owner.fetchrow(counts)) == before
    session = await cluster.owner.fetchrow("SELECT title FROM sessions WHERE session_id = $1", own)
    assert session["title"] != "renamed by a read"


@pytest.mark.parametrize("read_only", [True, False])
async def test_the_runtime_role_cannot_write_on_the_standby_even_outside_read_only(
    cluster: Cluster, read_only: bool
) -> None:
    a = cluster.world.a
    own = sorted(a.sessions[a.alice.user_id])[0]
    add_sql, add_args = QueryString(*_statement(a, own)).compile_string(engine_type="postgres")
    writes = [
        ("INSERT INTO sessions (tenant_id, user_id, title) VALUES ($1, $2, 'x')", [a.tenant_id, a.alice.user_id]),
        ("UPDATE sessions SET title = 'x' WHERE tenant_id = $1 AND session_id = $2", [a.tenant_id, own]),
        ("DELETE FROM sessions WHERE tenant_id = $1 AND session_id = $2", [a.tenant_id, own]),
        (add_sql, add_args),
    ]
    connection = await asyncpg.connect(cluster.standby_runtime_dsn)
    try:
        for sql, args in writes:
            await connection.execute("BEGIN READ ONLY" if read_only else "BEGIN")
            await set_context(connection, a.tenant_id, a.alice.user_id)
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await connection.execute(sql, *args)
            await connection.execute("ROLLBACK")
    finally:
        await connection.close()


def _statement(tenant: TestTenant, session_id: uuid.UUID) -> tuple[Any, ...]:
    sql, args = message_queries.add_statement(tenant.tenant_id, session_id, tenant.alice.user_id, "user", "x")
    return (sql, *args)


async def test_a_page_of_another_origin_may_send_and_read_x_read_after(cluster: Cluster) -> None:
    a, frontend = cluster.world.a, "https://frontend.example.test"
    async with serve(cluster.settings(cors_origins=(frontend,))) as http:
        preflight = await http.options(
            a.path(),
            headers={
                "Origin": frontend,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, x-read-after",
            },
        )
        created = await http.post(a.path(), headers={"Origin": frontend, **a.alice.headers}, json={})
    assert preflight.status_code in {200, 204}, preflight.text
    assert "x-read-after" in preflight.headers["access-control-allow-headers"].lower()
    assert created.status_code == 201
    assert "x-read-after" in created.headers
    assert created.headers["access-control-expose-headers"].lower() == "x-read-after"
