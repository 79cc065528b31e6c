"""GET /api/{tenant_id}/sessions?q=…: the matching rule, snippets, totals and paging of §5, over HTTP on real PG."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.sessions.search import terms_of, words_with_positions
from tests.factories import TestTenant, TestUser, World, add_message, create_session, make_tenant


async def search(client: Any, tenant: TestTenant, user: TestUser, q: str, **params: Any) -> dict[str, Any]:
    response = await client.get(tenant.path(), headers=user.headers, params={"q": q, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[uuid.UUID]:
    return [uuid.UUID(s["session_id"]) for s in body["sessions"]]


async def session_with(owner: asyncpg.Pool, user: TestUser, *messages: str, title: str | None = None) -> uuid.UUID:
    session_id = await create_session(owner, user, title=title)
    for content in messages:
        await add_message(owner, user.tenant_id, session_id, content, role="assistant")
    return session_id


# -- the matching rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "q", "matches"),
    [
        ("Where is shipment 4711?", "ship 47", True),
        ("Where is shipment 4711?", "SHIPMENT", True),
        ("Where is shipment 4711?", "hipment", False),  # a prefix of a word, not any substring
        ("Where is shipment 4711?", "ship 48", False),
        ("L'École est fermée", "école", True),
        ("L'École est fermée", "ÉCOLE FERM", True),
        ("L'École est fermée", "ecole", False),  # no accent folding
        ("Привет, МИР", "мир привет", True),
        ("Привет, МИР", "мира", False),
        ("東京タワーの予約", "東京", True),
        ("order_4711 is late", "order", True),
        ("order_4711 is late", "4711", True),
        ("order_4711 is late", "order_4711", True),  # two terms, both begin words of the message
        ("order_4711 is late", "der", False),
        ("mail anna@etms.example now", "etms", True),
        ("mail anna@etms.example now", "exam anna", True),
        ("total 12.50 EUR", "50", True),
        ("total 12.50 EUR", "12.5", True),
        ("total 12.50 EUR", "250", False),
        ("invoice 2025-118", "118", True),
        ("invoice 2025-118", "2025118", False),
    ],
)
async def test_the_matching_rule(client, owner, world: World, content: str, q: str, matches: bool) -> None:
    user = world.a.alice
    session_id = await session_with(owner, user, content)
    body = await search(client, world.a, user, q)
    assert (session_id in ids(body)) is matches, body


async def test_every_term_within_one_message_or_the_title(client, owner, world: World) -> None:
    user = world.a.bob
    spread = await session_with(owner, user, "zorblax arrived", "quintel left")
    together = await session_with(owner, user, "zorblax and quintel arrived")
    titled = await session_with(owner, user, "nothing here", title="Zorblax quintel review")
    half_title = await session_with(owner, user, "quintel", title="zorblax")
    body = await search(client, world.a, user, "zorb quint", limit=100)
    assert set(ids(body)) == {together, titled}
    assert spread not in ids(body)
    assert half_title not in ids(body)
    assert body["total"] == 2
    assert body["total_capped"] is False


async def test_a_renamed_title_is_searched_by_its_new_words(client, owner, world: World) -> None:
    user = world.a.alice
    session_id = await session_with(owner, user, title="Flumpet plans")
    response = await client.patch(
        world.a.path(f"sessions/{session_id}"), headers=user.headers, json={"title": "Gribble"}
    )
    assert response.status_code == 200, response.text
    assert ids(await search(client, world.a, user, "flumpet")) == []
    assert ids(await search(client, world.a, user, "gribb")) == [session_id]


async def test_a_message_posted_over_http_and_its_untitled_session_are_found(client, world: World) -> None:
    user = world.a.alice
    created = await client.post(world.a.path(), headers=user.headers, json={})
    session_id = created.json()["session_id"]
    posted = await client.post(
        world.a.path(f"sessions/{session_id}/messages"),
        headers=user.headers,
        json={"role": "user", "content": "Wombatic delivery 99812"},
    )
    assert posted.status_code in (200, 201), posted.text
    body = await search(client, world.a, user, "wombatic 998")
    assert [s["session_id"] for s in body["sessions"]] == [session_id]
    assert body["sessions"][0]["snippet"] == "Wombatic delivery 99812"


async def test_deleted_sessions_leave_no_words(client, owner, world: World) -> None:
    user = world.a.alice
    session_id = await session_with(owner, user, "Quokkamatic", title="Quokkamatic title")
    response = await client.delete(world.a.path(f"sessions/{session_id}"), headers=user.headers)
    assert response.status_code == 204
    assert await owner.fetchval("SELECT count(*) FROM search_words WHERE session_id = $1", session_id) == 0
    assert ids(await search(client, world.a, user, "quokka")) == []


async def test_the_database_cuts_words_like_the_api(owner) -> None:
    texts = [
        "L'École ÉCOLE Привет МИР 東京タワー 12.50 order_4711 anna@etms.example 2025-118",
        "straße ΣΊΣΥΦΟΣ café-crème naïve ﬁne 🎉party x²y ٤٥ İx ...",
        "tab\tnew\nline\u00a0nbsp" + "a" * 100,
    ]
    for text in texts:
        stored = {r["w"] for r in await owner.fetch("SELECT w FROM chat_search_words($1) AS w", text)}
        assert stored == {word[:64] for _, word in words_with_positions(text.lower())}, text


def test_terms_drop_words_another_term_begins() -> None:
    assert terms_of("ship shipment SHIP s 47 4711") == ["4711", "shipment"]
    assert terms_of("%_'\\ :* & | ! ( 🎉") == []
    assert terms_of("x" * 300) == ["x" * 64]


# -- results: sort, snippets, paging, totals ------------------------------------------------


async def test_results_keep_the_requested_sort(client, owner, world: World) -> None:
    user = world.a.alice
    now = datetime.now(UTC)
    made = []
    for hours in (5, 1, 3):
        session_id = await create_session(
            owner,
            user,
            title="Plinthos report",
            created_at=now - timedelta(hours=hours),
            updated_at=now - timedelta(hours=10 - hours),
        )
        made.append(session_id)
    by_updated = ids(await search(client, world.a, user, "plinthos"))
    assert by_updated == [made[0], made[2], made[1]]
    by_created = ids(await search(client, world.a, user, "plinthos", sort_by="created_at", order="asc"))
    assert by_created == [made[0], made[2], made[1]]
    assert ids(await search(client, world.a, user, "plinthos", sort_by="created_at")) == [made[1], made[2], made[0]]


async def test_snippet_is_plain_text_around_the_first_matched_word(client, owner, world: World) -> None:
    user = world.a.bob
    long = "Lorem ipsum " * 30 + "the parcel Zenkotrax\n\narrived   damaged " + "dolor sit " * 40
    session_id = await session_with(owner, user, "no match", long, "later zenkotrax", title="Some title")
    body = await search(client, world.a, user, "zenkotrax")
    hit = body["sessions"][0]
    assert uuid.UUID(hit["session_id"]) == session_id
    snippet = hit["snippet"]
    assert len(snippet) <= 200
    assert "the parcel Zenkotrax arrived damaged" in snippet
    assert snippet.startswith("…")
    assert snippet.endswith("…")
    titled = await session_with(owner, user, "unrelated", title="Blorptastic <b>title</b>")
    body = await search(client, world.a, user, "blorpt")
    assert [(uuid.UUID(s["session_id"]), s["snippet"]) for s in body["sessions"]] == [
        (titled, "Blorptastic <b>title</b>")
    ]


async def test_the_plain_list_has_no_snippet(client, world: World) -> None:
    response = await client.get(world.a.path(), headers=world.a.alice.headers)
    body = response.json()
    assert body["total_capped"] is False
    assert all(s["snippet"] is None for s in body["sessions"])


async def test_offset_pages_walk_the_results(client, owner, world: World) -> None:
    user = world.a.alice
    made = {await session_with(owner, user, f"Vextrolux item {i}") for i in range(7)}
    seen: list[uuid.UUID] = []
    for offset in range(0, 9, 3):
        body = await search(client, world.a, user, "vextrolux", limit=3, offset=offset)
        assert body["total"] == 7
        assert body["has_more"] is (offset + 3 < 7)
        seen += ids(body)
    assert len(seen) == 7
    assert set(seen) == made


@pytest.mark.parametrize("common", [False, True])
async def test_total_is_capped_past_a_thousand(client, owner, settings, common: bool) -> None:
    tenant = await make_tenant(owner, settings.jwt_secret, "cap")
    user = tenant.alice
    word = "capword" if common else "raretoken"
    await owner.execute(
        """INSERT INTO sessions (tenant_id, user_id, title, created_at, updated_at)
           SELECT $1, $2, $3 || ' ' || i, now() - i * interval '1 minute', now() - i * interval '1 minute'
           FROM generate_series(1, 1005) AS i""",
        user.tenant_id,
        user.user_id,
        word,
    )
    matching = 1005
    if common:  # so many words that the search walks the sessions instead of reading the term's words
        matching += 2000
        await owner.execute(
            """INSERT INTO sessions (tenant_id, user_id, title) SELECT $1, $2, 'capwordy filler'
               FROM generate_series(1, 2000) AS i""",
            user.tenant_id,
            user.user_id,
        )
    body = await search(client, tenant, user, word, limit=100)
    assert body["total"] == 1000
    assert body["total_capped"] is True
    assert body["has_more"] is True
    assert len(body["sessions"]) == 100
    last = await search(client, tenant, user, word + " 100", limit=100)  # "…100" and "1000"…"1005"
    assert last["total"] == 7
    assert last["total_capped"] is False
    everything = await search(client, tenant, user, word, limit=100, archived="all")
    assert everything["total"] == 1000
    assert everything["total_capped"] is True
    assert ids(everything) == ids(body)
    second = await search(client, tenant, user, word, limit=100, cursor=body["next_cursor"])
    assert ids(second) == ids(await search(client, tenant, user, word, limit=100, offset=100))
    assert second["total"] == 1000
    deep = await search(client, tenant, user, word, limit=10, offset=matching - 5)
    assert len(deep["sessions"]) == 5
    assert deep["has_more"] is False


# -- the parameter q ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    [
        "",
        "   ",
        "\t\n",
        "x" * 201,
        "%",
        "_",
        "'",
        "\\",
        ":*",
        "&|!(",
        "🎉",
        "a\x00b",
        " ".join("abcdefghijklmnopqrstuvwxyz0123456"),
    ],
)
async def test_q_refused_names_q(client, world: World, q: str) -> None:
    response = await client.get(world.a.path(), headers=world.a.alice.headers, params={"q": q})
    assert response.status_code == 400, (q, response.text)
    assert "q" in response.json()["extra"][0]["key"]


@pytest.mark.parametrize(
    "q",
    [
        "%a%",
        "a_b",
        "o'brien",
        "back\\slash",
        "word:*",
        "a & b",
        "a | b",
        "!a",
        "(a",
        "a)",
        "🎉 party",
        "é" * 200,
        "x" * 199 + "y",
        " ".join("abcdefghijklmnopqrstuvwxyz012345"),
        "a\u0301",
        "' OR 1=1 --",
        "$1",
        "{}",
        "\u00a0 nbsp \u2028",
    ],
)
async def test_hostile_q_never_fails_and_never_matches_everything(client, owner, world: World, q: str) -> None:
    user = world.a.alice
    await session_with(owner, user, "Nothing hostile here")
    response = await client.get(world.a.path(), headers=user.headers, params={"q": q})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        body = response.json()
        terms = terms_of(q)
        for hit in body["sessions"]:
            assert hit["snippet"] is not None
            words = {w for _, w in words_with_positions(hit["snippet"])}
            assert any(w.startswith(t) for t in terms for w in words), (q, hit)
        assert body["total"] < len(world.a.sessions[user.user_id]) + 1


# -- isolation ----------------------------------------------------------------------------


async def test_search_never_matches_counts_or_quotes_foreign_rows(client, owner, world: World) -> None:
    planted_title = "Xylophant secret title"
    planted_message = "the xylophant secret message"
    mine = await session_with(owner, world.a.alice, "xylophant of alice")
    bob_title = await session_with(owner, world.a.bob, title=planted_title)
    bob_message = await session_with(owner, world.a.bob, planted_message)
    foreign_title = await session_with(owner, world.b.alice, title=planted_title)
    foreign_message = await session_with(owner, world.b.admin, planted_message)
    foreign = {str(s) for s in (foreign_title, foreign_message)}

    alice = await search(client, world.a, world.a.alice, "xylophant", limit=100)
    assert ids(alice) == [mine]
    assert alice["total"] == 1
    assert "secret" not in str(alice)
    assert ids(await search(client, world.a, world.a.alice, "xylophant secret")) == []

    admin = await search(client, world.a, world.a.admin, "xylophant", limit=100)
    assert set(ids(admin)) == {mine, bob_title, bob_message}
    assert admin["total"] == 3
    assert not foreign & {s["session_id"] for s in admin["sessions"]}
    one = await search(client, world.a, world.a.admin, "xylo secret", user_id=str(world.a.bob.user_id))
    assert set(ids(one)) == {bob_title, bob_message}
    # an admin naming another tenant's user finds nothing of theirs
    other = await search(client, world.a, world.a.admin, "xylophant", user_id=str(world.b.alice.user_id))
    assert other["total"] == 0
    assert other["sessions"] == []

    response = await client.get(
        world.a.path(), headers=world.a.alice.headers, params={"q": "xylophant", "user_id": str(world.a.bob.user_id)}
    )
    assert response.status_code == 403
    assert "secret" not in response.text


# -- with the filters and cursors ----------------------------------------------------------


async def test_search_combines_with_every_filter(client, owner, world: World) -> None:
    user = world.a.alice
    agent = world.a.agents["DebtAgent"]
    plain = await session_with(owner, user, title="Grommet plain")
    pinned = await session_with(owner, user, title="Grommet pinned")
    archived = await session_with(owner, user, title="Grommet archived")
    by_agent = await create_session(owner, user, title="Grommet agent", agent_id=agent)
    await owner.execute("UPDATE sessions SET pinned = true WHERE session_id = $1", pinned)
    await owner.execute("UPDATE sessions SET archived = true WHERE session_id = $1", archived)

    async def found(**params: Any) -> set[uuid.UUID]:
        body = await search(client, world.a, user, "grommet", limit=100, **params)
        assert body["total"] == len(body["sessions"])
        return set(ids(body))

    assert await found() == {plain, pinned, by_agent}
    assert await found(archived="true") == {archived}
    assert await found(archived="all") == {plain, pinned, archived, by_agent}
    assert await found(pinned="true") == {pinned}
    assert await found(pinned="false", archived="all") == {plain, archived, by_agent}
    assert await found(agent_id=str(agent)) == {by_agent}
    assert await found(agent_id=str(uuid.uuid4())) == set()
    admin = await search(client, world.a, world.a.admin, "grommet", user_id=str(user.user_id), archived="all")
    assert set(ids(admin)) == {plain, pinned, archived, by_agent}
    flags = {uuid.UUID(s["session_id"]): (s["pinned"], s["archived"]) for s in admin["sessions"]}
    assert flags[pinned] == (True, False)
    assert flags[archived] == (False, True)


async def walk(client: Any, tenant: TestTenant, user: TestUser, q: str, limit: int, **params: Any) -> list[uuid.UUID]:
    """Every page of a search by its cursors."""
    seen: list[uuid.UUID] = []
    body = await search(client, tenant, user, q, limit=limit, **params)
    while True:
        seen += ids(body)
        assert body["offset"] == 0
        assert body["has_more"] is (body["next_cursor"] is not None)
        if body["next_cursor"] is None:
            return seen
        body = await search(client, tenant, user, q, limit=limit, cursor=body["next_cursor"], **params)


async def test_a_cursor_walks_the_results_in_order_without_repeats(client, owner, world: World) -> None:
    user = world.a.bob
    now = datetime.now(UTC)
    made = [
        await create_session(owner, user, title=f"Snorkel {i}", created_at=now - timedelta(minutes=i))
        for i in range(23)
    ]
    assert await walk(client, world.a, user, "snork", 5) == made
    assert await walk(client, world.a, user, "snork", 4, sort_by="created_at", order="asc") == made[::-1]


async def test_a_cursor_walk_survives_writes_between_pages(client, owner, world: World) -> None:
    user = world.a.alice
    made = [await session_with(owner, user, f"Trundle {i}") for i in range(12)]
    first = await search(client, world.a, user, "trundle", limit=5)
    await session_with(owner, user, "Trundle newcomer")  # newest: before the cursor, not on later pages
    last = ids(first)[-1]
    await owner.execute("DELETE FROM sessions WHERE session_id = $1", made[0])
    seen = ids(first)
    body = first
    while body["next_cursor"]:
        body = await search(client, world.a, user, "trundle", limit=5, cursor=body["next_cursor"])
        seen += ids(body)
    assert len(seen) == len(set(seen))
    assert set(made) - {made[0]} <= set(seen)
    assert last in seen


async def test_a_cursor_is_bound_to_q(client, world: World, owner) -> None:
    user = world.a.alice
    for i in range(3):
        await session_with(owner, user, f"Quibble {i} wobble")
    body = await search(client, world.a, user, "quibble", limit=1)
    cursor = body["next_cursor"]
    assert cursor
    for params in ({"q": "wobble"}, {"q": "quibble wobble"}, {}):
        response = await client.get(world.a.path(), headers=user.headers, params={"cursor": cursor, **params})
        assert response.status_code == 400, (params, response.text)
        assert response.json()["extra"][0]["key"] == "cursor"
    listed = await client.get(world.a.path(), headers=user.headers, params={"limit": 1})
    response = await client.get(
        world.a.path(), headers=user.headers, params={"q": "quibble", "cursor": listed.json()["next_cursor"]}
    )
    assert response.status_code == 400
    same = await search(client, world.a, user, "QUIBBLE", limit=1, cursor=cursor)  # the same terms
    assert len(same["sessions"]) == 1


async def test_q_is_documented_in_openapi(client) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    listing = {p["name"]: p for p in document["paths"]["/api/{tenant_id}/sessions"]["get"]["parameters"]}
    assert "1–200 characters" in listing["q"]["description"]
    assert listing["q"]["in"] == "query"
    info = document["components"]["schemas"]["SessionInfo"]["properties"]
    assert "snippet" in info
    assert "total_capped" in document["components"]["schemas"]["SessionListResponse"]["properties"]


async def test_an_admins_hit_on_another_users_session_is_recorded(client, owner, world: World) -> None:
    bobs = await session_with(owner, world.a.bob, "Flibbertigibbet report")
    admins = await session_with(owner, world.a.admin, "Flibbertigibbet of the admin")

    async def entries() -> list[tuple[uuid.UUID, uuid.UUID, str]]:
        rows = await owner.fetch(
            "SELECT session_id, reader_id, action FROM access_log WHERE session_id = ANY($1::uuid[])", [bobs, admins]
        )
        return [(r["session_id"], r["reader_id"], r["action"]) for r in rows]

    await search(client, world.a, world.a.bob, "flibbert")  # their own: nothing recorded
    assert await entries() == []
    body = await search(client, world.a, world.a.admin, "flibbert")
    assert set(ids(body)) == {bobs, admins}
    assert await entries() == [(bobs, world.a.admin.user_id, "search")]
    await client.get(world.a.path(), headers=world.a.admin.headers)  # a plain list quotes nothing
    assert await entries() == [(bobs, world.a.admin.user_id, "search")]
