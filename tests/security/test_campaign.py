"""A randomized cross-tenant read campaign (hypothesis): random attacker, victim, route and parameters.

Each draw is sent to the real app; its status must be exactly what the isolation model says
(403 for another tenant's path, 404 for a session the attacker may not read, 403 for a
supporter naming a colleague or reading the users directory, 400 for a cursor that is not bound
to the draw's parameters) and its body must hold no row the attacker may not see. The draws
include the list's filters (``archived``, ``pinned``, ``agent_id``) and cursors that the
tenants' users obtained from their own lists and histories, replayed by anyone.
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

from app.sessions.search import terms_of
from tests.factories import TestTenant, TestUser, World
from tests.security.attack import READS, Route, foreign_markers, leaks

MAX_EXAMPLES = 1000
# Search texts: words of the victims' titles and messages (``make_tenant``), their emails' parts,
# hostile spellings of them, and texts without a word (400).
SEARCHES = [
    "message",
    "mess 0",
    "A message",
    "B message",
    "session",
    "sess 1",
    "example test",
    "supporter",
    "admin",
    "A",
    "B",
    "0",
    "%message%",
    "mess:*",
    "message & 0 | !(",
    "' OR 1=1 --",
    "ses_sion",
]
NO_TERM = ["%", ":*", "&|!(", "🎉", "   ", "'"]


@dataclass(frozen=True)
class Made:
    """A cursor a user obtained from their own list or history, with what it is bound to."""

    route: Route
    session_id: uuid.UUID
    params: dict[str, str]
    cursor: str
    binding: tuple[str | None, ...]


@dataclass(frozen=True)
class Draw:
    """One attack: who, on which tenant's path, which route, which session and parameters."""

    attacker: TestUser
    path_tenant: uuid.UUID
    route: Route
    session_id: uuid.UUID
    params: dict[str, str]
    cursor_binding: tuple[str | None, ...] | None = None  # the binding of the cursor sent, if any


def tenant_of(world: World, user: TestUser) -> TestTenant:
    return world.a if user.tenant_id == world.a.tenant_id else world.b


def binding(
    user: TestUser, path_tenant: uuid.UUID, route: Route, session_id: uuid.UUID, params: dict[str, str]
) -> tuple[str | None, ...]:
    """What a cursor of this request would be bound to (contract §5: the list's parameters, not limit)."""
    if route.by_session:
        return ("messages", str(session_id), params.get("order", "asc"))
    scope = params.get("user_id") if user.role == "admin" else str(user.user_id)
    archived, order = params.get("archived", "false"), params.get("order", "desc")
    filters = (params.get("pinned"), params.get("agent_id"), params.get("sort_by", "updated_at"), order)
    terms = " ".join(terms_of(params["q"])) if "q" in params else None  # a search's cursor: bound to its terms
    return ("sessions", str(path_tenant), scope, archived, *filters, terms)


def expected(world: World, draw: Draw) -> int:
    """The status the isolation model prescribes."""
    user = draw.attacker
    if draw.path_tenant != user.tenant_id:
        return 403
    if draw.route.path == "users":
        return 200 if user.role == "admin" else 403
    if draw.route.path in ("sessions", "export"):  # both take user_id: a supporter may name only themselves
        named = draw.params.get("user_id")
        if user.role != "admin" and named not in (None, str(user.user_id)):
            return 403
        if draw.params.get("q") in NO_TERM:
            return 400
    mine = binding(user, draw.path_tenant, draw.route, draw.session_id, draw.params)
    if draw.cursor_binding is not None and draw.cursor_binding != mine:
        return 400
    if draw.route.by_session:
        tenant = tenant_of(world, user)
        readable = tenant.all_session_ids if user.role == "admin" else set(tenant.sessions[user.user_id])
        return 200 if draw.session_id in readable else 404
    return 200


def everyone(world: World) -> list[TestUser]:
    return [t.__dict__[r] for t in (world.a, world.b) for r in ("admin", "alice", "bob")]


async def cursors(client: Any, world: World) -> list[Made]:
    """Cursors each user gets from their own lists (a few parameter sets) and their sessions' histories."""
    lists, histories = (
        next(r for r in READS if r.path == path) for path in ("sessions", "sessions/{session_id}/messages")
    )
    made = []
    for user in everyone(world):
        tenant = tenant_of(world, user)
        variants: list[dict[str, str]] = [{}, {"archived": "all"}, {"sort_by": "created_at", "order": "asc"}]
        variants += [{"q": "message"}, {"q": "Mess", "sort_by": "created_at"}]
        if user.role == "admin":
            variants.append({"user_id": str(tenant.alice.user_id)})
        for params in variants:
            body = (
                await client.get(lists.url(tenant.tenant_id), headers=user.headers, params={**params, "limit": 1})
            ).json()
            if body["next_cursor"]:
                key = binding(user, tenant.tenant_id, lists, uuid.UUID(int=0), params)
                made.append(Made(lists, uuid.UUID(int=0), params, body["next_cursor"], key))
        for session_id in tenant.sessions[user.user_id]:
            for params in ({}, {"order": "desc"}):
                url = histories.url(tenant.tenant_id, session_id)
                body = (await client.get(url, headers=user.headers, params={**params, "limit": 1})).json()
                if body["next_cursor"]:
                    key = binding(user, tenant.tenant_id, histories, session_id, params)
                    made.append(Made(histories, session_id, params, body["next_cursor"], key))
    assert {m.route.path for m in made} == {lists.path, histories.path}
    return made


def draws(world: World, made: list[Made]) -> st.SearchStrategy[Draw]:
    users = everyone(world)
    sessions = [*sorted(world.a.all_session_ids | world.b.all_session_ids), uuid.uuid4()]
    user_ids = [str(u.user_id) for u in users] + [str(uuid.uuid4())]
    agents = [str(a) for t in (world.a, world.b) for a in t.agents.values()] + [str(uuid.uuid4())]

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
        elif "order" in route.query and draw(st.booleans()):
            params["order"] = draw(st.sampled_from(["asc", "desc"]))
        for name, values in (
            ("archived", ["false", "true", "all"]),
            ("pinned", ["true", "false"]),
            ("agent_id", agents),
        ):
            if name in route.query and draw(st.integers(0, 3)) == 0:
                params[name] = draw(st.sampled_from(values))
        if "q" in route.query and draw(st.booleans()):
            params["q"] = draw(st.sampled_from(SEARCHES + NO_TERM))
        session_id = draw(st.sampled_from(sessions))
        cursor_binding = None
        replayable = [m for m in made if m.route == route]
        if replayable and draw(st.booleans()):
            # Someone's cursor, mostly under the parameters it was made with (then it is the
            # attacker's identity and path that must keep it from opening anyone else's rows).
            chosen = draw(st.sampled_from(replayable))
            if draw(st.integers(0, 3)):
                params = {key: value for key, value in params.items() if key == "limit"} | chosen.params
                session_id = chosen.session_id if route.by_session else session_id
            params |= {"cursor": chosen.cursor, "offset": "0"}
            cursor_binding = chosen.binding
        return Draw(attacker, path_tenant, route, session_id, params, cursor_binding)

    return one()


async def test_random_cross_tenant_reads_never_leak(client, victims: World) -> None:
    loop = asyncio.get_running_loop()
    outcomes: Counter[int] = Counter()
    replayed: Counter[int] = Counter()
    leaked: list[tuple[Draw, set[str]]] = []
    wrong: list[tuple[Draw, int]] = []

    async def attack(draw: Draw) -> None:
        url = draw.route.url(draw.path_tenant, draw.session_id)
        response = await client.get(url, headers=draw.attacker.headers, params=draw.params)
        outcomes[response.status_code] += 1
        if draw.cursor_binding is not None:
            replayed[response.status_code] += 1
        if response.status_code != expected(victims, draw):
            wrong.append((draw, response.status_code))
        sent = url + "?" + urlencode(draw.params)
        found = leaks(response.text, foreign_markers(victims, draw.attacker), sent=sent)
        if found:
            leaked.append((draw, found))

    made = await cursors(client, victims)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(draws(victims, made))
    def campaign(draw: Draw) -> None:
        asyncio.run_coroutine_threadsafe(attack(draw), loop).result(timeout=30)

    await asyncio.to_thread(campaign)
    attempts = sum(outcomes.values())
    print(f"\ncross-tenant campaign: {attempts} attempts, statuses {dict(sorted(outcomes.items()))}")
    print(f"cursors replayed: {sum(replayed.values())}, statuses {dict(sorted(replayed.items()))}")
    assert attempts >= MAX_EXAMPLES // 2
    assert not leaked, leaked[:3]
    assert not wrong, wrong[:3]
    assert outcomes[403]  # the campaign reached both sides of the guard, and ids RLS hides
    assert outcomes[200]
    assert outcomes[404]
    assert replayed[200]  # cursors were followed (their owner, or the admin of the list they came from) ...
    assert replayed[400]  # ... and refused under another list's parameters
