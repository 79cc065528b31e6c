"""``make bench-replica``: the list and the history through a streaming hot standby, beside the primary.

The data set is ``make bench-scale``'s (``SCALE``, default 0.05; ``SCALE=1`` is 1,000,000
sessions and 20,000,000 messages), loaded once into the embedded primary and reused. Each
run makes a fresh standby of it (``pg_basebackup -R`` under ``.data/bench-standby``, removed
afterwards) and measures, for the list (the ``power`` user's first page) and a 10,000-message
history, at concurrency 1 and 16 (``BENCH_CONCURRENCY``), one uvicorn worker:

- ``primary``: the server without a replica;
- ``standby``: the server with ``APP_READ_DATABASE_URL``, reads without ``X-Read-After``;
- ``standby + X-Read-After``: the same with a position the standby has replayed (the LSN
  check runs, and passes);
- ``fallback to primary``: a position it never reaches (the check fails; the primary answers).

Each row has its floor: the same transaction through asyncpg without HTTP, on the server that
answers (with the LSN check where the request has it). Two more floor rows price the write
side: posting a message with and without reading the WAL position after COMMIT. On a shared
machine those figures drift with the other load, so the per-request costs are also measured
in alternation (``BENCH_PAIRED_ROUNDS``, default 2,000 rounds; each round runs both variants,
in swapped order every other round, and the median of the per-round differences is printed):
a read through the standby instead of the primary (two servers side by side, HTTP), the LSN
check (floor on the standby, and over HTTP), a fallback to the primary (HTTP), and the WAL
position read after COMMIT (floor). On one machine the standby adds no capacity (both
servers share the cores): the point is what routing costs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from app.db.context import set_context
from app.db.embedded import EmbeddedPostgres
from app.db.replica import POSITION_SQL, REACHED_SQL, format_lsn
from app.messages.queries import add_statement, history_statement
from app.sessions.queries import Filters, list_statement
from app.settings import runtime_dsn_from
from bench import harness
from bench.harness import Database, Report, Request, Row
from bench.scale import loaded_data
from bench.scenarios import LIMITS, POST_BODY, Context, _compiled, int_list

STANDBY = harness.PROJECT / ".data" / "bench-standby"
NEVER = "FFFFFFFF/FFFFFFFF"  # a WAL position no server reaches


@dataclass(frozen=True)
class Floor:
    """How the floor runs a request's transaction: on which server, read-only or not, with the LSN check or not."""

    dsn: str
    read_only: bool = False
    read_after: str | None = None
    position_after_commit: bool = False


def transaction(tenant_id: str, user_id: str, queries: Sequence[tuple[str, list[Any]]], floor: Floor) -> Any:
    """The request's transaction as the app runs it on ``floor``'s server (see ``bench.scenarios.replay``)."""
    tenant, user = UUID(tenant_id), UUID(user_id)
    begin = LIMITS.begin_read_only_sql if floor.read_only else LIMITS.begin_sql

    async def run(connection: asyncpg.Connection, n: int) -> None:
        sql, args = queries[n % len(queries)]
        await connection.execute(begin)
        try:
            if floor.read_after is not None:
                await connection.fetchval(REACHED_SQL, floor.read_after)
            await set_context(connection, tenant, user)
            await connection.fetch(sql, *args)
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")
        if floor.position_after_commit:
            await connection.fetchval(POSITION_SQL)

    return run


@dataclass(frozen=True)
class Case:
    """One measured line: a scenario through one server configuration, and its floor (None: no floor)."""

    name: str
    replica: bool
    requests: Sequence[Request]
    floor: Floor | None
    transaction: Any = None


def standby_of(primary_dsn: str) -> tuple[EmbeddedPostgres, int]:
    """A fresh streaming standby of the embedded primary, started; waits until it accepts connections."""
    shutil.rmtree(STANDBY, ignore_errors=True)
    standby = EmbeddedPostgres(STANDBY)
    started = time.monotonic()
    standby.make_standby(urlsplit(primary_dsn).port or 5432)
    port = standby.start_port()
    print(f"   standby: pg_basebackup -R and start in {time.monotonic() - started:.0f} s", flush=True)
    return standby, port


async def caught_up(primary_dsn: str, standby_dsn: str) -> str:
    """Wait until the standby replayed the primary's current position; return that position."""
    primary = await asyncpg.connect(primary_dsn)
    standby = await asyncpg.connect(standby_dsn)
    try:
        position = format_lsn(await primary.fetchval(POSITION_SQL))
        while not await standby.fetchval(REACHED_SQL, position):  # noqa: ASYNC110 - polls another server
            await asyncio.sleep(0.1)
        return position
    finally:
        await primary.close()
        await standby.close()


def cases(ctx: Context, db: Database, standby_runtime: str, reached: str) -> list[Case]:
    """Every scenario in the four configurations."""
    data = ctx.loaded
    tenant = ctx.tenant
    power, heavy = data.power, data.heavy
    list_path = f"/api/{tenant}/sessions"
    page = list_statement(
        UUID(tenant), Filters(user_id=UUID(power)), limit=10, offset=0, sort_by="updated_at", order="desc"
    )
    list_query = [_compiled(*page)]
    history_paths = [f"/api/{tenant}/sessions/{s}/messages" for s in data.heavy_sessions]
    history_queries = [
        _compiled(*history_statement(UUID(tenant), UUID(s), limit=50, offset=0)) for s in data.heavy_sessions
    ]
    found = []
    for label, user, paths, queries in (
        ("list", power, [list_path], list_query),
        ("history", heavy, history_paths, history_queries),
    ):
        token = ctx.token(user)
        floors = [Floor(db.runtime_dsn), Floor(standby_runtime, True), Floor(standby_runtime, True, reached), None]
        headers: list[tuple[tuple[str, str], ...]] = [(), (), (("X-Read-After", reached),), (("X-Read-After", NEVER),)]
        names = ["primary", "standby", "standby + X-Read-After", "fallback to primary"]
        for name, floor, extra in zip(names, floors, headers, strict=True):
            requests = [Request(path, token, headers=extra) for path in paths]
            run = transaction(tenant, user, queries, floor) if floor else None
            found.append(Case(f"{label}, {name}", name != "primary", requests, floor, run))
    return found


async def served(dsns: Sequence[str]) -> list[int]:
    """Transactions committed and rolled back so far on each server's database (statistics: about a second late)."""
    counts = []
    for dsn in dsns:
        connection = await asyncpg.connect(dsn)
        try:
            row = await connection.fetchrow(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            )
            counts += [row["xact_commit"], row["xact_rollback"]]
        finally:
            await connection.close()
    return counts


def paired(ctx: Context, db: Database, all_cases: Sequence[Case], replica_env: dict[str, str], report: Report) -> None:
    """What the LSN check, a fallback and the WAL position read cost per request, measured in alternation."""
    print(f"-- paired, alternating, {PAIRED_ROUNDS:,} rounds each", flush=True)
    by_name = {case.name: case for case in all_cases}
    for label in ("list", "history"):
        unchecked, checked = by_name[f"{label}, standby"], by_name[f"{label}, standby + X-Read-After"]
        assert unchecked.floor is not None
        figures = asyncio.run(
            paired_floor(unchecked.floor.dsn, unchecked.transaction, checked.transaction, PAIRED_ROUNDS)
        )
        report_paired(report, f"{label}: the LSN check, floor on the standby", figures)
    with harness.api_server(db, 1) as primary, harness.api_server(db, 1, env=replica_env) as api:
        for label in ("list", "history"):
            plain = by_name[f"{label}, standby"].requests[0]
            reached = by_name[f"{label}, standby + X-Read-After"].requests[0]
            fallback = by_name[f"{label}, fallback to primary"].requests[0]
            routed = asyncio.run(paired_http(plain, plain, PAIRED_ROUNDS, primary, api))
            report_paired(report, f"{label}: the standby instead of the primary, HTTP", routed)
            check = asyncio.run(paired_http(plain, reached, PAIRED_ROUNDS, api))
            report_paired(report, f"{label}: the LSN check, HTTP", check)
            moved = asyncio.run(paired_http(reached, fallback, PAIRED_ROUNDS, api))
            report_paired(report, f"{label}: falling back to the primary, HTTP", moved)
    data = ctx.loaded
    inserts = [
        _compiled(*add_statement(UUID(ctx.tenant), UUID(s), UUID(data.power), POST_BODY["role"], POST_BODY["content"]))
        for s in data.power_sessions[:500]
    ]
    commit = transaction(ctx.tenant, data.power, inserts, Floor(db.runtime_dsn))
    position = transaction(ctx.tenant, data.power, inserts, Floor(db.runtime_dsn, position_after_commit=True))
    figures = asyncio.run(paired_floor(db.runtime_dsn, commit, position, PAIRED_ROUNDS))
    report_paired(report, "post: the WAL position after COMMIT, floor on the primary", figures)


def write_floors(ctx: Context, db: Database, concurrency: Sequence[int], report: Report) -> None:
    """Posting a message, floor only: COMMIT alone, and COMMIT then the WAL position read for X-Read-After."""
    data = ctx.loaded
    inserts = [
        _compiled(*add_statement(UUID(ctx.tenant), UUID(s), UUID(data.power), POST_BODY["role"], POST_BODY["content"]))
        for s in data.power_sessions[:500]
    ]
    for c in concurrency:
        for label, position in (("post, COMMIT", False), ("post, COMMIT + WAL position", True)):
            run = transaction(ctx.tenant, data.power, inserts, Floor(db.runtime_dsn, position_after_commit=position))
            floor = asyncio.run(harness.floor_run(db.runtime_dsn, run, c))
            report.add(Row(label, 1, c, None, floor, "floor only (asyncpg)"))


PAIRED_ROUNDS = int(os.environ.get("BENCH_PAIRED_ROUNDS", "2000"))


def _paired(first: list[float], second: list[float]) -> dict[str, float]:
    """Medians (ms) of two alternated series and the median of their per-round differences (µs)."""
    return {
        "without_ms": statistics.median(first) * 1000,
        "with_ms": statistics.median(second) * 1000,
        "difference_us": statistics.median(b - a for a, b in zip(first, second, strict=True)) * 1e6,
    }


async def paired_floor(dsn: str, without: Any, with_: Any, rounds: int) -> dict[str, float]:
    """Two transactions alternated on one connection (order swapped every round), each timed: load drift cancels."""
    connection = await asyncpg.connect(dsn)
    first: list[float] = []
    second: list[float] = []
    try:
        for n in range(rounds):
            order = ((without, first), (with_, second)) if n % 2 else ((with_, second), (without, first))
            for run, times in order:
                started = time.perf_counter()
                await run(connection, n)
                times.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return _paired(first, second)


async def paired_http(
    without: Request, with_: Request, rounds: int, server: harness.Server, other: harness.Server | None = None
) -> dict[str, float]:
    """Two requests alternated (order swapped every round), each timed, on keep-alive connections to
    ``server`` (``with_`` to ``other`` when given)."""
    connections = [await harness.HttpConnection.open(s.base) for s in (server, other or server)]
    first: list[float] = []
    second: list[float] = []
    try:
        for n in range(rounds):
            pair = ((without, connections[0], first), (with_, connections[1], second))
            for request, connection, times in pair if n % 2 else pair[::-1]:
                answer = await connection.request(request.method, request.path, request.token, extra=request.headers)
                assert answer.status == 200, answer.body
                times.append(answer.seconds)
    finally:
        for connection in connections:
            await connection.close()
    return _paired(first, second)


def report_paired(report: Report, name: str, figures: dict[str, float]) -> None:
    """Print one paired figure and keep it in the report's conditions."""
    report.conditions.setdefault("paired", {})[name] = figures
    print(
        f"{name:<56} without {figures['without_ms']:.3f} ms, with {figures['with_ms']:.3f} ms: "
        f"{figures['difference_us']:+.0f} µs (median of {PAIRED_ROUNDS:,} paired differences)",
        flush=True,
    )


def main() -> None:
    """Load (or reuse) the data set, make the standby, measure every case, print the table, save the JSON."""
    scale = float(os.environ.get("SCALE", "0.05"))
    concurrency = int_list("BENCH_CONCURRENCY", "1,16")
    with harness.database_server() as server:
        db, data = asyncio.run(loaded_data(server, scale))
        standby, port = standby_of(server)
        try:
            standby_owner = EmbeddedPostgres.dsn(port, db.name)
            standby_runtime = runtime_dsn_from(standby_owner, harness.RUNTIME_PASSWORD)
            reached = asyncio.run(caught_up(db.owner_dsn, standby_owner))
            ctx = Context(data)
            report = Report(f"replica-{scale:g}", {"scale": scale, "plan": data.plan, "counts": data.counts})
            report.conditions = harness.conditions() | asyncio.run(harness.server_facts(db.owner_dsn))
            harness.print_header(report)
            replica_env = {"APP_READ_DATABASE_URL": standby_runtime}
            all_cases = cases(ctx, db, standby_runtime, reached)
            servers = [db.owner_dsn, standby_owner]
            for replica in (False, True):
                with harness.api_server(db, 1, env=replica_env if replica else None) as api:
                    for case in (c for c in all_cases if c.replica is replica):
                        for c in concurrency:
                            floor = None
                            if case.floor is not None:
                                floor = asyncio.run(harness.floor_run(case.floor.dsn, case.transaction, c))
                            before = asyncio.run(served(servers))
                            http = harness.http_run(api, case.requests, c)
                            time.sleep(1.2)  # statistics are flushed about every second
                            delta = [b - a for a, b in zip(before, asyncio.run(served(servers)), strict=True)]
                            note = "tx primary {} commit / standby {} commit, {} rollback".format(delta[0], *delta[2:])
                            report.add(Row(case.name, 1, c, http, floor, note))
            write_floors(ctx, db, concurrency, report)
            paired(ctx, db, all_cases, replica_env, report)
            report.conditions["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            print(f"   load average at the end: {json.dumps(report.conditions['load_average_at_end'])}")
            print(f"saved {report.save()}")
        finally:
            standby.stop()
            shutil.rmtree(STANDBY, ignore_errors=True)


if __name__ == "__main__":
    main()
