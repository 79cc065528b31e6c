"""``make bench``: the sessions list of one user with 1,000 sessions × 20 messages, over HTTP and at the floor.

Seeds a fresh ``bench_list`` database (the user ``power`` of eTMS: 1,000 sessions of 20
messages; about 2,000 sessions of other users and tenants around it), then measures
``GET /api/{tenant_id}/sessions`` (first page, last page, an admin's tenant-wide page) at
concurrency 1, 4 and 16 with one uvicorn worker, beside the same transaction through
asyncpg. ``BENCH_CONCURRENCY``, ``BENCH_WORKERS``, ``BENCH_SECONDS`` change the runs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict

from bench import harness
from bench.generate import TENANTS, Plan, load
from bench.harness import Report
from bench.scenarios import Context, int_list, list_scenario, run

PLAN = Plan(sessions=3_000, messages=30_000, power_sessions=1_000, power_messages=20, sessions_per_user=100)
TIME_LIMIT = 600


def main() -> None:
    """Seed, measure, print the table, save the JSON."""
    deadline = time.monotonic() + TIME_LIMIT
    with harness.database_server() as server:
        db, _ = asyncio.run(harness.open_database(server, "bench_list", fresh=True))
        loaded = asyncio.run(load(db.owner_dsn, PLAN))
        ctx = Context(loaded)
        admin = loaded.admins[TENANTS[0]]
        scenarios = [
            list_scenario(ctx, "list, first page", loaded.power, owner=loaded.power),
            list_scenario(ctx, "list, last page (offset 990)", loaded.power, owner=loaded.power, offset=990),
            list_scenario(ctx, "list, admin tenant-wide", admin, owner=None),
        ]
        report = Report("list", {"plan": asdict(PLAN), "counts": loaded.counts})
        report.conditions = harness.conditions() | asyncio.run(harness.server_facts(db.owner_dsn))
        harness.print_header(report)
        run(report, db, scenarios, int_list("BENCH_CONCURRENCY", "1,4,16"), int_list("BENCH_WORKERS", "1"), deadline)
        print(f"saved {report.save()}")


if __name__ == "__main__":
    main()
