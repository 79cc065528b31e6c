"""``make bench-oracle``: does a 404 take longer for a colleague's session than for one that does not exist?

Issue 10 item 6. A supporter asks for sessions it may not see, on the five session routes
(GET the session, PATCH, DELETE, GET its messages, POST a message), in three cases:

- **missing**: a random id that exists nowhere,
- **other tenant**: a session of another tenant,
- **colleague**: a session of another supporter of the caller's own tenant.

All of them must answer 404, and equally fast: a difference lets a client tell which ids
are its colleagues' sessions. Each round sends every (route, case) pair once, in a fresh
random order, so drift on the shared machine hits all cases alike; the ids of the other
tenant and of the colleagues are drawn at random from their sessions. The real server
(``python -m app serve``, one worker) answers over one keep-alive connection on loopback.

Per route it prints p25, median and p75 of each case, and the Mann-Whitney U rank test of
colleague vs missing and other tenant vs missing as z (normal approximation with tie
correction; z > 0: that case is slower; |z| < 2 is within noise). Afterwards it checks that
the refused writes changed nothing: both tables as the database owner sees them, and each
targeted session as its owner reads it through the API. ``BENCH_ROUNDS`` (default 1000)
sets the requests per case.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import statistics
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import asyncpg

from app.auth.tokens import mint_token
from bench import harness
from bench.generate import TENANTS, Plan, load
from bench.harness import HttpConnection, Server
from bench.scenarios import SETTINGS

PLAN = Plan(sessions=3_000, messages=30_000, power_sessions=1_000, power_messages=20, sessions_per_user=100)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1000"))
WARMUP_ROUNDS = 30
CASES = ("missing", "other tenant", "colleague")
SAMPLE_IDS = 200  # sessions drawn from, per case
OWNER_CHECKS = 20  # targeted sessions re-read by their owners after the run


@dataclass(frozen=True)
class Route:
    """One of the five session routes, as a request for a session id."""

    name: str
    method: str
    suffix: str
    body: bytes | None = None


ROUTES = (
    Route("GET    /sessions/{id}", "GET", ""),
    Route("PATCH  /sessions/{id}", "PATCH", "", b'{"title": "probe"}'),
    Route("DELETE /sessions/{id}", "DELETE", ""),
    Route("GET    /sessions/{id}/messages", "GET", "/messages"),
    Route("POST   /sessions/{id}/messages", "POST", "/messages", b'{"role": "user", "content": "probe"}'),
)


def mann_whitney_z(sample: Sequence[float], reference: Sequence[float]) -> float:
    """Mann-Whitney U of ``sample`` against ``reference`` as a z score (normal approximation, ties corrected).

    z > 0 when ``sample`` tends to be larger. Ranks are averaged over ties; the variance
    shrinks by the ties' sum of (t³ - t), as in scipy's ``mannwhitneyu(method="asymptotic")``
    without continuity correction.
    """
    n1, n2 = len(sample), len(reference)
    values = sorted([(v, 0) for v in sample] + [(v, 1) for v in reference])
    rank_sum, ties, i = 0.0, 0.0, 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1][0] == values[i][0]:
            j += 1
        average_rank = (i + j) / 2 + 1
        rank_sum += average_rank * sum(1 for k in range(i, j + 1) if values[k][1] == 0)
        ties += (j - i + 1) ** 3 - (j - i + 1)
        i = j + 1
    u = rank_sum - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    return (u - n1 * n2 / 2) / math.sqrt(variance)


async def fingerprint(owner_dsn: str) -> dict[str, object]:
    """Counts and an md5 of every session and message row, as the database owner sees them."""
    connection = await asyncpg.connect(owner_dsn)
    try:
        row = await connection.fetchrow(
            """SELECT (SELECT count(*) FROM sessions) AS sessions,
                      (SELECT md5(string_agg(s::text, '|' ORDER BY session_id)) FROM sessions s) AS sessions_md5,
                      (SELECT count(*) FROM messages) AS messages,
                      (SELECT md5(string_agg(m::text, '|' ORDER BY message_id)) FROM messages m) AS messages_md5"""
        )
        return dict(row)
    finally:
        await connection.close()


@dataclass(frozen=True)
class Target:
    """A session the caller must not see, with its owner and tenant."""

    session_id: str
    owner_id: str
    tenant_id: str


async def targets(owner_dsn: str, tenant: str, caller: str) -> dict[str, list[Target]]:
    """Random samples of the colleagues' sessions and of the other tenants' sessions."""
    sql = """SELECT session_id::text, user_id::text, tenant_id::text FROM sessions
             WHERE tenant_id {} $1 AND user_id <> $2 ORDER BY random() LIMIT $3"""
    connection = await asyncpg.connect(owner_dsn)
    try:
        colleague = await connection.fetch(sql.format("="), uuid.UUID(tenant), uuid.UUID(caller), SAMPLE_IDS)
        other = await connection.fetch(sql.format("<>"), uuid.UUID(tenant), uuid.UUID(caller), SAMPLE_IDS)
    finally:
        await connection.close()
    return {"colleague": [Target(*r) for r in colleague], "other tenant": [Target(*r) for r in other]}


async def owners_view(server: Server, sessions: Sequence[Target]) -> list[str]:
    """Each session and its history as its owner reads them through the API (status and body)."""
    connection = await HttpConnection.open(server.base)
    seen = []
    try:
        for s in sessions:
            token = mint_token(uuid.UUID(s.owner_id), uuid.UUID(s.tenant_id), SETTINGS, ttl_seconds=3600)
            path = f"/api/{s.tenant_id}/sessions/{s.session_id}"
            session = await connection.request("GET", path, token)
            history = await connection.request("GET", path + "/messages", token)
            seen.append(f"{session.status} {session.body.decode()} {history.status} {history.body.decode()}")
    finally:
        await connection.close()
    return seen


async def measure(
    server: Server, tenant: str, token: str, ids: dict[str, list[Target]]
) -> tuple[dict[tuple[str, str], list[float]], Counter[tuple[str, str, int]]]:
    """Latencies per (route, case), WARMUP_ROUNDS + ROUNDS rounds of all pairs in shuffled order."""
    rng = random.Random(20251125)
    latencies: dict[tuple[str, str], list[float]] = {(r.name, c): [] for r in ROUTES for c in CASES}
    statuses: Counter[tuple[str, str, int]] = Counter()
    pairs = [(r, c) for r in ROUTES for c in CASES]
    connection = await HttpConnection.open(server.base)
    try:
        for round_ in range(WARMUP_ROUNDS + ROUNDS):
            rng.shuffle(pairs)
            for route, case in pairs:
                session_id = str(uuid.uuid4()) if case == "missing" else rng.choice(ids[case]).session_id
                path = f"/api/{tenant}/sessions/{session_id}{route.suffix}"
                answer = await connection.request(route.method, path, token, route.body)
                statuses[route.name, case, answer.status] += 1
                if round_ >= WARMUP_ROUNDS:
                    latencies[route.name, case].append(answer.seconds * 1e6)
    finally:
        await connection.close()
    return latencies, statuses


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """p25, median, p75."""
    q = statistics.quantiles(values, n=4)
    return q[0], q[1], q[2]


def print_table(latencies: dict[tuple[str, str], list[float]]) -> None:
    """Per route and case: n, p25, median, p75 (µs), the median's difference to missing, and z vs missing."""
    print(
        f"{'route':<32} {'case':<13} {'n':>4} {'p25 µs':>8} {'median µs':>10} {'p75 µs':>8} {'Δmedian µs':>11} {'z':>7}"
    )
    print("-" * 100)
    for route in ROUTES:
        missing = latencies[route.name, "missing"]
        base = statistics.median(missing)
        for case in CASES:
            values = latencies[route.name, case]
            p25, median, p75 = quartiles(values)
            diff = f"{median - base:>+11.0f}" if case != "missing" else f"{'':>11}"
            z = f"{mann_whitney_z(values, missing):>+7.1f}" if case != "missing" else f"{'':>7}"
            name = route.name if case == CASES[0] else ""
            print(f"{name:<32} {case:<13} {len(values):>4} {p25:>8.0f} {median:>10.0f} {p75:>8.0f} {diff} {z}")
    print("z: Mann-Whitney U vs missing (z > 0: slower than missing; |z| < 2: within noise)")


def main() -> None:
    """Seed, measure, print, check that nothing changed."""
    with harness.database_server() as server_dsn:
        db, _ = asyncio.run(harness.open_database(server_dsn, "bench_oracle", fresh=True))
        loaded = asyncio.run(load(db.owner_dsn, PLAN))
        tenant, caller = loaded.tenants[TENANTS[0]], loaded.power
        token = mint_token(uuid.UUID(caller), uuid.UUID(tenant), SETTINGS, ttl_seconds=7200)
        ids = asyncio.run(targets(db.owner_dsn, tenant, caller))
        checked = ids["colleague"][: OWNER_CHECKS // 2] + ids["other tenant"][: OWNER_CHECKS // 2]
        facts = harness.machine() | asyncio.run(harness.server_facts(db.owner_dsn))
        print(f"== timing oracle: data {json.dumps(loaded.counts)}")
        print(f"   plan {json.dumps(asdict(PLAN))}")
        print(f"   caller: supporter 'power' of {TENANTS[0]} ({loaded.counts['power_sessions']} own sessions)")
        print(f"   ids: {SAMPLE_IDS} colleague sessions, {SAMPLE_IDS} of other tenants, a fresh uuid4 per missing")
        print(
            f"   {ROUNDS} rounds (+{WARMUP_ROUNDS} warm-up) of 15 requests in shuffled order, one keep-alive connection"
        )
        print(f"   conditions: {json.dumps(facts)}", flush=True)
        before = asyncio.run(fingerprint(db.owner_dsn))
        with harness.api_server(db, 1) as server:
            seen_before = asyncio.run(owners_view(server, checked))
            latencies, statuses = asyncio.run(measure(server, tenant, token, ids))
            seen_after = asyncio.run(owners_view(server, checked))
        after = asyncio.run(fingerprint(db.owner_dsn))
        print(f"   load average at the end: {os.getloadavg()}")
        print()
        print_table(latencies)
        wrong = {k: n for k, n in statuses.items() if k[2] != 404}
        unchanged = before == after and seen_before == seen_after
        print()
        print(f"statuses: {sum(statuses.values())} requests, " + (f"NOT 404: {wrong}" if wrong else "all 404"))
        print(
            f"data unchanged: {'yes' if unchanged else 'NO'} (owner role: {before['sessions']} sessions, "
            f"{before['messages']} messages, md5 of both tables equal: {before == after}; "
            f"{len(checked)} targeted sessions as their owners read them: equal: {seen_before == seen_after})"
        )
        if wrong or not unchanged:
            sys.exit(1)


if __name__ == "__main__":
    main()
