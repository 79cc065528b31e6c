"""A randomized cross-tenant read campaign (hypothesis): random attacker, victim, route and parameters.

Each draw is sent to the real app; its status must be exactly what the isolation model says
(403 for another tenant's path, 404 for a session the attacker may not read, 403 for a
supporter naming a colleague) and its body must hold no row the attacker may not see.
The draws run in a worker thread (hypothesis is synchronous); the requests run on the
test's event loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import TestTenant, TestUser, World
from tests.security.attack import READS, Route, foreign_markers, leaks

MAX_EXAMPLES = 1000


@dataclass(frozen=True)
class Draw:
    """One attack: who, on which tenant's path, which route, which session and parameters."""

    attacker: TestUser
    path_tenant: uuid.UUID
    route: Route
    session_id: uuid.UUID
    params: dict[str, str]


def tenant_of(world: World, user: TestUser) -> TestTenant:
    return world.a if user.tenant_id == world.a.tenant_id else world.b


def expected(world: World, draw: Draw) -> int:
    """The status the isolation model prescribes."""
    user = draw.attacker
    if draw.path_tenant != user.tenant_id:
        return 403
    if draw.route.path in ("sessions", "export"):  # both take user_id: a supporter may name only themselves
        named = draw.params.get("user_id")
        return 403 if user.role != "admin" and named not in (None, str(user.user_id)) else 200
    if draw.route.by_session:
        tenant = tenant_of(world, user)
        readable = tenant.all_session_ids if user.role == "admin" else set(tenant.sessions[user.user_id])
        return 200 if draw.session_id in readable else 404
    return 200


def draws(world: World) -> st.SearchStrategy[Draw]:
    users = [t.__dict__[r] for t in (world.a, world.b) for r in ("admin", "alice", "bob")]
    sessions = [*sorted(world.a.all_session_ids | world.b.all_session_ids), uuid.uuid4()]
    user_ids = [str(u.user_id) for u in users] + [str(uuid.uuid4())]

    @st.composite
    def one(draw: Any) -> Draw:
        attacker = draw(st.sampled_from(users))
        # Mostly the attacker's own tenant path (the guard lets it through, so RLS alone must hold),
        # sometimes the other tenant's or an unknown one (the guard's 403).
        own = attacker.tenant_id
        other = world.b.tenant_id if own == world.a.tenant_id else world.a.tenant_id
        path_tenant = draw(st.sampled_from([own, own, own, other, uuid.uuid4()]))
        route = draw(st.sampled_from(READS))
        params: dict[str, str] = {}
        if "user_id" in route.query and draw(st.booleans()):
            params["user_id"] = draw(st.sampled_from(user_ids))
        if "limit" in route.query:
            params["limit"] = str(draw(st.integers(1, 100)))
            params["offset"] = str(draw(st.integers(0, 8)))
        if "sort_by" in route.query:
            params["sort_by"] = draw(st.sampled_from(["updated_at", "created_at"]))
            params["order"] = draw(st.sampled_from(["asc", "desc"]))
        return Draw(attacker, path_tenant, route, draw(st.sampled_from(sessions)), params)

    return one()


async def test_random_cross_tenant_reads_never_leak(client, victims: World) -> None:
    loop = asyncio.get_running_loop()
    outcomes: Counter[int] = Counter()
    leaked: list[tuple[Draw, set[str]]] = []
    wrong: list[tuple[Draw, int]] = []

    async def attack(draw: Draw) -> None:
        url = draw.route.url(draw.path_tenant, draw.session_id)
        response = await client.get(url, headers=draw.attacker.headers, params=draw.params)
        outcomes[response.status_code] += 1
        if response.status_code != expected(victims, draw):
            wrong.append((draw, response.status_code))
        sent = url + "?" + urlencode(draw.params)
        found = leaks(response.text, foreign_markers(victims, draw.attacker), sent=sent)
        if found:
            leaked.append((draw, found))

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(draws(victims))
    def campaign(draw: Draw) -> None:
        asyncio.run_coroutine_threadsafe(attack(draw), loop).result(timeout=30)

    await asyncio.to_thread(campaign)
    attempts = sum(outcomes.values())
    print(f"\ncross-tenant campaign: {attempts} attempts, statuses {dict(sorted(outcomes.items()))}")
    assert attempts >= MAX_EXAMPLES // 2
    assert not leaked, leaked[:3]
    assert not wrong, wrong[:3]
    assert outcomes[403]  # the campaign reached both sides of the guard, and ids RLS hides
    assert outcomes[200]
    assert outcomes[404]
