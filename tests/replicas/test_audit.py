"""``python -m app rls audit`` on the hot standby reports what it reports on the primary.

A streaming standby's catalogs are the primary's, so every rule-based check finds the same on
both. Only the drift check needs to replay the policy files, which a read-only server refuses:
on the standby it is a warning saying it was not compared (the primary's run compares it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from tests.replicas.conftest import Cluster

NOT_COMPARED = "not compared: the server is read-only (a hot standby?)"


async def audit(cluster: Cluster, owner_dsn: str) -> tuple[int, dict[str, Any]]:
    """The CLI's exit status and JSON report for the database of ``owner_dsn`` (runtime role ``chat_app``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "rls",
        "audit",
        "--json",
        env={**os.environ, "DATABASE_URL": owner_dsn, "APP_DATABASE_URL": cluster.runtime_dsn},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return int(process.returncode or 0), json.loads(out)


def findings(report: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {(f["name"], f["level"], f["object"], f["detail"]) for f in report["findings"]}


def same_state(primary: dict[str, Any], standby: dict[str, Any]) -> None:
    """The standby's report is the primary's, but for its address and the drift that it could not compare."""
    [not_compared] = [f for f in standby["findings"] if f["name"] == "drift"]
    assert not_compared["level"] == "WARN"
    assert not_compared["detail"].startswith(NOT_COMPARED)
    assert findings(standby) - findings(primary) == {
        (not_compared["name"], "WARN", not_compared["object"], not_compared["detail"])
    }
    assert findings(primary) <= findings(standby)
    for key in ("migrator", "runtime_role", "runtime_roles", "tenant_tables", "policies", "clean", "excluded"):
        assert standby[key] == primary[key], key
    checks = {c["name"]: c["ok"] for c in primary["checks"]}
    assert {c["name"]: c["ok"] for c in standby["checks"]} == checks | {"drift": False}
    assert standby["database"] != primary["database"]


async def test_the_audit_on_the_standby_reports_the_primarys_clean_state(cluster: Cluster) -> None:
    (primary_status, primary), (standby_status, standby) = await asyncio.gather(
        audit(cluster, cluster.owner_dsn), audit(cluster, cluster.standby_owner_dsn)
    )
    assert primary_status == standby_status == 0
    assert primary["clean"] is True
    assert not [f for f in primary["findings"] if f["name"] == "drift"]  # compared on the primary: no drift
    same_state(primary, standby)


async def test_a_break_on_the_primary_is_reported_on_the_standby_too(cluster: Cluster) -> None:
    await cluster.owner.execute("GRANT TRUNCATE ON messages TO PUBLIC")
    try:
        await cluster.caught_up()
        (primary_status, primary), (standby_status, standby) = await asyncio.gather(
            audit(cluster, cluster.owner_dsn), audit(cluster, cluster.standby_owner_dsn)
        )
    finally:
        await cluster.owner.execute("REVOKE TRUNCATE ON messages FROM PUBLIC")
    assert primary_status == standby_status == 1
    grants = {f["object"] for f in standby["findings"] if f["name"] == "unexpected_grant"}
    assert grants == {"TRUNCATE on public.messages to PUBLIC"}
    same_state(primary, standby)
