"""``make bench-privacy``: the sessions list while ``db prune`` deletes 100,000 expired sessions, and export speed.

Seeds a fresh ``bench_privacy`` database: the user ``power`` of eTMS (1,000 recent sessions
of 20 messages: the list measured), ``heavy`` (10 sessions of 2,000 messages: the export
measured) and about 100,000 other sessions of one message each, all three tenants, aged
400 days; every tenant then gets ``retention_days = 30``. Measured with one uvicorn worker:

1. ``GET /sessions`` of ``power`` (first page) with wrk for ``BENCH_PRUNE_SECONDS``, quiet;
2. the same while ``python -m app db prune`` runs beside it (started just before), then quiet again;
3. ``GET /export`` of ``heavy``, by heavy and by eTMS's admin (recorded): messages/s.

Goal: p99 during the prune at most twice the quiet p99. ``BENCH_CONCURRENCY`` (default 4).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

import asyncpg
import httpx

from bench import harness
from bench.generate import TENANTS, Plan, load
from bench.scenarios import Context

PLAN = Plan(
    sessions=101_010,
    messages=140_000,
    power_sessions=1_000,
    power_messages=20,
    heavy_sessions=10,
    heavy_messages=2_000,
    sessions_per_user=1_000,
)
RETENTION_DAYS = 30
SECONDS = float(os.environ.get("BENCH_PRUNE_SECONDS", "10"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))


async def expire(owner_dsn: str, keep: list[str]) -> int:
    """Age every session but those of ``keep`` (users) by 400 days; a retention for every tenant. How many expired."""
    connection = await asyncpg.connect(owner_dsn)
    try:
        await connection.execute("SET session_replication_role = replica")  # no triggers: nothing is published
        status = await connection.execute(
            "UPDATE sessions SET updated_at = now() - interval '400 days' WHERE user_id <> ALL($1::uuid[])", keep
        )
        # The measured users' sessions are recent: the prune deletes exactly the others.
        await connection.execute("UPDATE sessions SET updated_at = now() WHERE user_id = ANY($1::uuid[])", keep)
        await connection.execute("SET session_replication_role = origin")
        await connection.execute("UPDATE tenants SET retention_days = $1", RETENTION_DAYS)
        await connection.execute("VACUUM (ANALYZE) sessions, tenants")
        return int(status.split()[-1])
    finally:
        await connection.close()


async def export_rate(server: harness.Server, ctx: Context, tenant: str, reader: str, owner: str) -> dict[str, Any]:
    """One export of ``owner``'s sessions read by ``reader``: messages/s and MB/s."""
    started = time.perf_counter()
    messages = size = 0
    async with (
        httpx.AsyncClient(base_url=server.base, timeout=120) as http,
        http.stream(
            "GET",
            f"/api/{tenant}/export",
            params={"user_id": owner},
            headers={"Authorization": f"Bearer {ctx.token(reader)}"},
        ) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            size += len(line) + 1
            messages += len(json.loads(line)["messages"])
    seconds = time.perf_counter() - started
    return {"messages": messages, "mb": size / 1e6, "seconds": seconds, "messages_per_s": messages / seconds}


def main() -> None:
    """Seed, measure, print, save the JSON."""
    results: dict[str, Any] = {"plan": asdict(PLAN), "seconds": SECONDS, "concurrency": CONCURRENCY}
    with harness.database_server() as server_dsn:
        db, _ = asyncio.run(harness.open_database(server_dsn, "bench_privacy", fresh=True))
        loaded = asyncio.run(load(db.owner_dsn, PLAN))
        ctx = Context(loaded)
        expired = asyncio.run(expire(db.owner_dsn, [loaded.power, loaded.heavy]))
        results["expired_sessions"] = expired
        results["conditions"] = harness.conditions() | asyncio.run(harness.server_facts(db.owner_dsn))
        print(f"{expired:,} expired sessions (retention {RETENTION_DAYS} days) beside power's 1,000", flush=True)
        listing = [harness.Request(f"/api/{ctx.tenant}/sessions", ctx.token(loaded.power))]
        with harness.api_server(db, workers=1) as api:
            harness.wrk(api.base, listing, CONCURRENCY, 2)  # warm-up
            quiet = harness.wrk(api.base, listing, CONCURRENCY, SECONDS)
            env = os.environ | {"DATABASE_URL": db.owner_dsn}
            started = time.monotonic()
            prune = subprocess.Popen(
                [sys.executable, "-m", "app", "db", "prune"],
                cwd=harness.PROJECT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            busy = harness.wrk(api.base, listing, CONCURRENCY, SECONDS)
            overlap = prune.poll() is None
            out, _ = prune.communicate(timeout=600)
            pruned_in = time.monotonic() - started
            after = harness.wrk(api.base, listing, CONCURRENCY, SECONDS)  # quiet again: how noisy the machine is
            admin = loaded.admins[TENANTS[0]]
            own = asyncio.run(export_rate(api, ctx, ctx.tenant, loaded.heavy, loaded.heavy))
            recorded = asyncio.run(export_rate(api, ctx, ctx.tenant, admin, loaded.heavy))
    results |= {
        "quiet": quiet,
        "during_prune": busy,
        "quiet_after": after,
        "prune_seconds": pruned_in,
        "prune_ran_throughout": overlap,
        "prune_output": out.splitlines(),
        "export_own": own,
        "export_by_admin": recorded,
    }
    ratio = busy["p99_ms"] / quiet["p99_ms"]
    print(f"list, quiet:          p50 {quiet['p50_ms']:.2f} ms  p99 {quiet['p99_ms']:.2f} ms  {quiet['rps']:.0f} req/s")
    print(
        f"list, during prune:   p50 {busy['p50_ms']:.2f} ms  p99 {busy['p99_ms']:.2f} ms  {busy['rps']:.0f} req/s"
        f"  (p99 ×{ratio:.2f}; goal ≤ 2; prune ran throughout: {overlap})"
    )
    print(f"list, quiet again:    p50 {after['p50_ms']:.2f} ms  p99 {after['p99_ms']:.2f} ms  {after['rps']:.0f} req/s")
    print(f"prune: {expired:,} sessions in {pruned_in:.1f} s; " + "; ".join(out.splitlines()))
    for name, figures in (("own", own), ("by the admin (recorded)", recorded)):
        print(
            f"export {name}: {figures['messages']:,} messages, {figures['mb']:.1f} MB in {figures['seconds']:.2f} s"
            f" = {figures['messages_per_s']:,.0f} messages/s"
        )
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    path = harness.RESULTS / "privacy.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
