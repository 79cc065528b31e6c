"""Hostile values in every query parameter, path segment and body field: 400 or 404, never 500, never a leak.

Free-text fields (titles, message content) are the exception by design: any text without a
NUL byte is valid there, and must come back exactly as sent (the SQL is parameterised). So is
the search text ``q``: hostile text with a word in it is a search (200) for those words only.
Each id and integer has one spelling (``app/inputs.py``): a canonical ASCII UUID, plain ASCII
digits; another spelling of a real id is refused, so a proxy keyed on the raw URL can't be fooled.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from app.sessions.search import terms_of, words_with_positions
from tests.factories import World, create_session, other_spellings
from tests.security.attack import BY_SESSION, MOUNTED, Route, foreign_markers, leaks

HOSTILE = {
    "sql quote": "' OR '1'='1",
    "sql stacked": "1; DROP TABLE sessions; --",
    "sql union": "x' UNION SELECT user_id, email FROM users --",
    "sql set_config": "'); SELECT set_config('app.tenant_id', NULL, false); --",
    "sql comment": "1/**/OR/**/1=1",
    "huge number": "9" * 40,
    "bigint overflow": "9223372036854775808",
    "negative": "-1",
    "big negative": "-9223372036854775809",
    "float": "1.5",
    "integral float": "10.0",
    "exponent": "1e1",
    "capital exponent": "1E1",
    "plus sign": "+5",
    "minus zero": "-0",
    "leading zero": "05",
    "leading space": " 5",
    "underscore": "1_0",
    "fullwidth digits": "\uff11\uff10",
    "arabic-indic digits": "\u0661\u0660",
    "hexadecimal": "0x10",
    "unicode": "ünïcødé 漢字 😀",
    "right-to-left override": "\u202eevil",
    "NUL": "\x00",
    "NUL inside": "10\x00",
    "empty": "",
    "whitespace": "   ",
    "long": "x" * 5000,
    "percent": "%",
    "like wildcards": "%_%",
    "uuid with NUL": f"{uuid.uuid4()}\x00",
    "uuid too long": f"{uuid.uuid4()}0",
}
FREE_TEXT = {"title", "content"}
QUERY_CASES = [(route, name, key) for route in MOUNTED for name in route.query for key in HOSTILE]
BODY_CASES = [(route, name, key) for route in MOUNTED for name in route.body_fields for key in HOSTILE]


def case_id(case: Any) -> str:
    return str(case)


@pytest.mark.parametrize(("route", "name", "key"), QUERY_CASES, ids=case_id)
async def test_hostile_query_parameter_is_400(client, victims: World, route: Route, name: str, key: str) -> None:
    user = victims.a.admin
    url = route.url(victims.a.tenant_id, victims.a.sessions[user.user_id][0])
    value = HOSTILE[key]
    response = await client.request(route.method, url, headers=user.headers, params={name: value})
    assert not leaks(response.text, foreign_markers(victims, user))
    searched = name == "q" and "\x00" not in value and 0 < len(value.strip()) <= 200 and terms_of(value)
    if not searched:
        assert response.status_code == 400, response.text
        assert name in response.json()["detail"]
        return
    assert response.status_code == 200, response.text
    for hit in response.json()["sessions"]:  # every hit holds every term (its snippet at least one): no match-all
        words = {w for _, w in words_with_positions(hit["snippet"].lower())}
        assert any(w.startswith(t) for t in terms_of(value) for w in words), (value, hit)


@pytest.mark.parametrize("route", MOUNTED, ids=str)
@pytest.mark.parametrize("key", HOSTILE)
async def test_hostile_tenant_path_segment_is_401_without_a_token_and_400_naming_it_with_one(
    client, victims: World, route: Route, key: str
) -> None:
    user = victims.a.admin
    url = route.url(quote(HOSTILE[key], safe=""), victims.a.sessions[user.user_id][0])
    anonymous = await client.request(route.method, url, json=route.body)
    response = await client.request(route.method, url, headers=user.headers, json=route.body)
    if not HOSTILE[key] or "/" in HOSTILE[key]:  # no segment, or the decoded slash makes it another, unknown URL
        assert (anonymous.status_code, response.status_code) == (404, 404), response.text
    else:
        assert anonymous.status_code == 401, anonymous.text  # authentication first
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("tenant_id "), response.json()
    assert not leaks(response.text, foreign_markers(victims, user))


@pytest.mark.parametrize("route", BY_SESSION, ids=str)
@pytest.mark.parametrize("key", [k for k, v in HOSTILE.items() if v])  # an empty segment is another URL
async def test_hostile_session_path_segment_is_400_naming_it(client, victims: World, route: Route, key: str) -> None:
    user = victims.a.admin
    url = route.url(victims.a.tenant_id, quote(HOSTILE[key], safe=""))
    response = await client.request(route.method, url, headers=user.headers, json=route.body)
    if "/" in HOSTILE[key]:  # the path is decoded before routing: a slash makes it another, unknown URL
        assert response.status_code == 404, response.text
    else:
        assert response.status_code == 400, response.text
        assert "session_id" in response.json()["detail"]
    assert not leaks(response.text, foreign_markers(victims, user))


@pytest.mark.parametrize(("route", "name", "key"), BODY_CASES, ids=case_id)
async def test_hostile_body_field(
    client, victims: World, owner: asyncpg.Pool, route: Route, name: str, key: str
) -> None:
    user = victims.a.bob
    session_id = await create_session(owner, user, title="target")
    value = HOSTILE[key]
    body = {**(route.body or {}), name: value}
    response = await client.request(
        route.method, route.url(victims.a.tenant_id, session_id), headers=user.headers, json=body
    )
    if name == "title" and not value.strip():
        assert response.status_code == route.ok, response.text
        assert response.json()["title"] is None  # a blank title means "untitled"
    elif name == "content" and not value.strip():
        assert response.status_code == 400, response.text  # empty or blank content is refused
        assert name in response.json()["detail"]
    elif name in FREE_TEXT and "\x00" not in value:
        assert response.status_code == route.ok, response.text
        assert response.json()[name] == (value.strip()[:255] if name == "title" else value)
    else:
        assert response.status_code == 400, response.text
        assert name in response.json()["detail"]
    assert not leaks(response.text, foreign_markers(victims, user))


@pytest.mark.parametrize("route", [r for r in MOUNTED if r.body_fields], ids=str)
@pytest.mark.parametrize("value", [12345, -1, 1e308, True, None, [], ["x"], {"$ne": None}], ids=repr)
async def test_body_field_of_the_wrong_type_is_400(
    client, victims: World, owner: asyncpg.Pool, route: Route, value: Any
) -> None:
    user = victims.a.bob
    session_id = await create_session(owner, user, title="target")
    for name in route.body_fields:
        if value is None and name in {"title", "agent_id"}:
            continue  # optional fields: null means "none"
        if value is True and name in {"pinned", "archived"}:
            continue  # the right type
        body = {**(route.body or {}), name: value}
        response = await client.request(
            route.method, route.url(victims.a.tenant_id, session_id), headers=user.headers, json=body
        )
        assert response.status_code == 400, (name, response.text)
        assert not leaks(response.text, foreign_markers(victims, user))


@pytest.mark.parametrize("route", [r for r in MOUNTED if r.writes and r.body], ids=str)
@pytest.mark.parametrize("raw", [b"{", b"[]", b'"x"', b"\x00", b"\xff\xfe", b'{"title": "\\u0000"}'])
async def test_malformed_json_body_is_400(
    client, victims: World, owner: asyncpg.Pool, route: Route, raw: bytes
) -> None:
    """(An empty or ``null`` body is a valid "no fields" for POST sessions, so it is not here.)"""
    user = victims.a.bob
    session_id = await create_session(owner, user, title="target")
    response = await client.request(
        route.method,
        route.url(victims.a.tenant_id, session_id),
        headers={**user.headers, "Content-Type": "application/json"},
        content=raw,
    )
    assert response.status_code == 400, response.text
    assert not leaks(response.text, foreign_markers(victims, user))


@pytest.mark.parametrize("spelling", other_spellings(uuid.uuid4()))
async def test_another_spelling_of_a_real_id_is_400_naming_it(client, victims: World, spelling: str) -> None:
    """The same tenant, session, user or agent written otherwise is refused everywhere an id enters."""
    tenant, admin = victims.a, victims.a.admin
    own = await client.get(tenant.path(), headers=admin.headers)
    assert own.status_code == 200
    session_id = tenant.sessions[admin.user_id][0]
    cases = [
        ("tenant_id", "GET", f"/api/{other_spellings(tenant.tenant_id)[spelling]}/sessions", {}),
        ("session_id", "GET", tenant.path(f"sessions/{other_spellings(session_id)[spelling]}"), {}),
        ("user_id", "GET", tenant.path(), {"params": {"user_id": other_spellings(admin.user_id)[spelling]}}),
        (
            "agent_id",
            "POST",
            tenant.path(),
            {"json": {"agent_id": other_spellings(tenant.agents["DebtAgent"])[spelling]}},
        ),
    ]
    for name, method, url, extra in cases:
        response = await client.request(method, url, headers=admin.headers, **extra)
        assert response.status_code == 400, (name, response.text)
        assert response.json()["detail"].startswith(f"{name} must be a UUID"), response.json()


async def test_upper_case_ids_are_the_canonical_spelling_too(client, victims: World) -> None:
    tenant, admin = victims.a, victims.a.admin
    session_id = str(tenant.sessions[admin.user_id][0]).upper()
    response = await client.get(f"/api/{str(tenant.tenant_id).upper()}/sessions/{session_id}", headers=admin.headers)
    assert response.status_code == 200, response.text
    listed = await client.get(tenant.path(), headers=admin.headers, params={"user_id": str(admin.user_id).upper()})
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == len(tenant.sessions[admin.user_id])
