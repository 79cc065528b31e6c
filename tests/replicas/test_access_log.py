"""Recorded reads with a read replica: an admin's read of a colleague's session runs (and records) on the primary.

Replay is paused so that the standby visibly lags: a session written meanwhile is unknown
to it. A supporter's read is still served by the standby (404: it lags), an admin's recorded
read by the primary (200, one entry), though neither sends ``X-Read-After``.
"""

from __future__ import annotations

from tests.conftest import serve
from tests.factories import World
from tests.replicas.conftest import Cluster


async def test_an_admins_recorded_read_runs_on_the_primary_and_a_supporters_on_the_standby(
    cluster: Cluster, fresh_world: World
) -> None:
    a = fresh_world.a
    async with serve(cluster.settings()) as http:
        await cluster.pause_replay()
        try:
            created = await http.post(a.path("sessions"), headers=a.alice.headers, json={"title": "while paused"})
            session_id = created.json()["session_id"]
            lagging = await http.get(a.path(f"sessions/{session_id}"), headers=a.alice.headers)
            reads = [
                await http.get(a.path(path), headers=a.admin.headers)
                for path in (
                    f"sessions/{session_id}",
                    f"sessions/{session_id}/messages",
                    f"export?user_id={a.alice.user_id}",
                )
            ]
        finally:
            await cluster.resume_replay()
        await cluster.caught_up()
        log = await http.get(a.path("access-log"), params={"session_id": session_id}, headers=a.alice.headers)
    assert created.status_code == 201
    assert lagging.status_code == 404  # the standby answered the supporter, and had not replayed the write
    assert [r.status_code for r in reads] == [200, 200, 200]  # the primary answered the admin
    assert reads[0].json()["title"] == "while paused"
    assert session_id in reads[2].text
    rows = await cluster.owner.fetch(
        "SELECT action FROM access_log WHERE tenant_id = $1 AND session_id = $2 ORDER BY action",
        a.tenant_id,
        session_id,
    )
    assert [r["action"] for r in rows] == ["export", "messages", "session"]
    assert sorted(e["action"] for e in log.json()["entries"]) == ["export", "messages", "session"]
