"""``make bench-scale``: the API at up to 1,000,000 sessions and 20,000,000 messages, beside the database floor.

``SCALE`` (default 0.05) multiplies the full size (1,000,000 sessions, 20,000,000
messages over three tenants; ``SCALE=1`` is the full size). At every scale the eTMS user
``power`` holds 10,000 sessions and ``heavy`` holds sessions of 10,000 messages each.
The data set is loaded once per scale into ``bench_scale_<scale>`` and reused by later
runs (``BENCH_RELOAD=1`` to load it again). Scenarios: the list (first page, deep offset, the
second and the deepest cursor page,
an admin's tenant-wide page, sessions of 10,000 messages), a session's history,
posting a message, and search (a supporter's rare and common terms, an admin's
tenant-wide), at concurrency 1, 16 and 64 with 1 and 2 uvicorn workers
(``BENCH_CONCURRENCY``, ``BENCH_WORKERS``, ``BENCH_SECONDS`` change that;
``BENCH_LOAD_ONLY=1`` only loads).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict
from uuid import UUID

import asyncpg

from app.cursors import Position
from bench import harness
from bench.generate import TENANTS, Loaded, Plan, load
from bench.harness import Report
from bench.scenarios import (
    Context,
    cursor_scenario,
    history_scenario,
    int_list,
    list_scenario,
    post_scenario,
    run,
    search_scenario,
)

FULL_SESSIONS = 1_000_000
FULL_MESSAGES = 20_000_000
TIME_LIMIT = int(os.environ.get("BENCH_TIME_LIMIT", "3600"))


def plan_for(scale: float) -> Plan:
    """The data set at ``scale`` (1.0 = 1,000,000 sessions and 20,000,000 messages)."""
    sessions = max(1_000, int(FULL_SESSIONS * scale))
    messages = max(10_000, int(FULL_MESSAGES * scale))
    heavy = max(1, min(20, messages // 5 // 10_000))
    return Plan(
        sessions=sessions,
        messages=messages,
        power_sessions=min(10_000, sessions // 4),
        heavy_sessions=heavy,
        heavy_messages=10_000,
    )


async def loaded_data(server: str, scale: float) -> tuple[harness.Database, Loaded]:
    """The data set of ``scale``: reused when a previous run loaded it completely, else loaded now."""
    plan = plan_for(scale)
    name = "bench_scale_" + f"{scale:g}".replace(".", "_")
    reload = os.environ.get("BENCH_RELOAD") == "1"
    db, created = await harness.open_database(server, name, fresh=reload)
    connection = await asyncpg.connect(db.owner_dsn)
    try:
        marker = await connection.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", name
        )
    finally:
        await connection.close()
    if not created and marker:
        saved = json.loads(marker)
        if saved["plan"] == asdict(plan):
            return db, Loaded(**saved)
    if not created:  # an incomplete or different load: start over
        db, _ = await harness.open_database(server, name, fresh=True)
    print(f"   loading {plan.sessions:,} sessions and {plan.messages:,} messages into {name} …", flush=True)
    data = await load(db.owner_dsn, plan)
    connection = await asyncpg.connect(db.owner_dsn)
    try:
        text = json.dumps(asdict(data)).replace("'", "''")
        await connection.execute(f"COMMENT ON DATABASE \"{name}\" IS '{text}'")
    finally:
        await connection.close()
    return db, data


async def position_at(db: harness.Database, user_id: str, rows: int) -> Position:
    """Where the ``rows``-th session of ``user_id``'s default list ends: the position its next page's cursor carries."""
    connection = await asyncpg.connect(db.owner_dsn)
    try:
        row = await connection.fetchrow(
            "SELECT updated_at, session_id FROM sessions WHERE user_id = $1 AND NOT archived"
            " ORDER BY updated_at DESC, session_id DESC OFFSET $2 LIMIT 1",
            UUID(user_id),
            rows - 1,
        )
    finally:
        await connection.close()
    return row["updated_at"], row["session_id"]


async def rare_term(db: harness.Database, user_id: str) -> str:
    """A rare word: the user's highest session number ("Conversation N about shipment …"), which begins few words."""
    connection = await asyncpg.connect(db.owner_dsn)
    try:
        title = await connection.fetchval(
            "SELECT title FROM sessions WHERE user_id = $1 AND title IS NOT NULL"
            " ORDER BY length(title) DESC, title DESC LIMIT 1",
            UUID(user_id),
        )
    finally:
        await connection.close()
    return str(title).split()[1]


def main() -> None:
    """Load (or reuse) the data set, measure every scenario, print the table, save the JSON."""
    scale = float(os.environ.get("SCALE", "0.05"))
    deadline = time.monotonic() + TIME_LIMIT
    with harness.database_server() as server:
        db, data = asyncio.run(loaded_data(server, scale))
        if os.environ.get("BENCH_LOAD_ONLY") == "1":
            print(f"loaded: {json.dumps(data.counts)} in {data.seconds} s")
            return
        ctx = Context(data)
        power = data.power
        deep = max(0, data.counts["power_sessions"] - 100)
        rare = asyncio.run(rare_term(db, power))
        scenarios = [
            list_scenario(ctx, "list, first page", power, owner=power),
            list_scenario(ctx, f"list, deep offset {deep:,}", power, owner=power, offset=deep),
            cursor_scenario(ctx, "list, cursor page 2", power, asyncio.run(position_at(db, power, 10))),
            cursor_scenario(
                ctx, f"list, cursor page {deep // 10 + 1:,}", power, asyncio.run(position_at(db, power, deep))
            ),
            list_scenario(ctx, "list, admin tenant-wide", data.admins[TENANTS[0]], owner=None),
            list_scenario(ctx, "list, sessions of 10k messages", data.heavy, owner=data.heavy),
            history_scenario(ctx, "history, 10k-message session", data.heavy_sessions),
            post_scenario(ctx, "post a message", data.power_sessions[:500]),
            search_scenario(ctx, "search, supporter, rare term", power, owner=power, q=rare),
            search_scenario(ctx, "search, supporter, common term", power, owner=power, q="shipment"),
            search_scenario(ctx, "search, supporter, two terms", power, owner=power, q="refund damag"),
            search_scenario(ctx, "search, admin tenant-wide, rare", data.admins[TENANTS[0]], owner=None, q=rare),
            search_scenario(ctx, "search, admin tenant-wide, common", data.admins[TENANTS[0]], owner=None, q="customs"),
        ]
        report = Report(
            f"scale-{scale:g}", {"scale": scale, "plan": data.plan, "counts": data.counts, "load_seconds": data.seconds}
        )
        report.conditions = harness.conditions() | asyncio.run(harness.server_facts(db.owner_dsn))
        harness.print_header(report)
        concurrency = int_list("BENCH_CONCURRENCY", "1,16,64")
        run(report, db, scenarios, concurrency, int_list("BENCH_WORKERS", "1,2"), deadline)
        print(f"saved {report.save()}")


if __name__ == "__main__":
    main()
