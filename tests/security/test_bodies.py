"""Hostile JSON bodies on every route that reads one: 400 naming the body, never a 500, never a leak.

A security tester found these answered 500 with nothing in the log: bytes that are not
UTF-8 inside a JSON string (overlong encodings, encoded surrogates, latin-1), and JSON
nested 50,000 levels deep. The body is decoded once for every route (``app.inputs``), so a
route added later is covered by this file as soon as ``tests/security/attack.py`` knows it.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from tests.factories import World, create_session
from tests.security.attack import MOUNTED, Route, foreign_markers, leaks

DEPTH = 50_000
NOT_UTF8 = {
    "overlong slash (C0 AF)": b"\xc0\xaf",
    "overlong 3-byte slash (E0 80 AF)": b"\xe0\x80\xaf",
    "overlong NUL (C0 80)": b"\xc0\x80",
    "encoded high surrogate (ED A0 80)": b"\xed\xa0\x80",
    "encoded low surrogate (ED BF BF)": b"\xed\xbf\xbf",
    "encoded surrogate pair (ED A0 BD ED B8 80)": b"\xed\xa0\xbd\xed\xb8\x80",
    "latin-1 e-acute (E9)": b"caf\xe9",
    "lone continuation byte (80)": b"\x80",
    "truncated sequence (E2 82)": b"\xe2\x82",
    "beyond U+10FFFF (F4 90 80 80)": b"\xf4\x90\x80\x80",
    "byte FF": b"\xff",
}
BODY_ROUTES = [r for r in MOUNTED if r.body]
TEXT_ROUTES = [r for r in BODY_ROUTES if r.body and any(isinstance(v, str) for v in r.body.values())]


def field_with(route: Route, raw: bytes) -> bytes:
    """The route's valid body with ``raw`` inside its first text field's string (else in a list's first item)."""
    assert route.body is not None
    texts = [k for k, v in route.body.items() if isinstance(v, str) and k != "role"]
    if not texts:  # a body of ids only (``{"session_ids": [...]}``)
        name = next(iter(route.body))
        return b'{"' + name.encode() + b'": ["x' + raw + b'x"]}'
    name = texts[0]
    parts = [f'"{k}": "{v}"'.encode() for k, v in route.body.items() if k != name]
    return b"{" + b", ".join([*parts, f'"{name}": "x'.encode() + raw + b'x"']) + b"}"


def with_value(raw: bytes) -> Callable[[Route], bytes]:
    """A variant: the route's valid body with ``raw`` inside one string value."""
    return lambda route: field_with(route, raw)


# Each variant: the body sent to a route (made from the route's valid body where it matters).
VARIANTS: dict[str, Callable[[Route], bytes]] = {
    **{f"value: {name}": with_value(raw) for name, raw in NOT_UTF8.items()},
    "key: latin-1 (E9)": lambda _: b'{"titl\xe9": "x"}',
    "key: encoded surrogate (ED A0 80)": lambda _: b'{"\xed\xa0\x80": "x"}',
    f"arrays nested {DEPTH:,} deep": lambda _: b"[" * DEPTH + b"]" * DEPTH,
    f"objects nested {DEPTH:,} deep": lambda _: b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    f"nested {DEPTH:,} deep inside a field": lambda _: b'{"title": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "unterminated nesting": lambda _: b"[" * DEPTH,
}


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
@pytest.mark.parametrize("variant", VARIANTS)
async def test_hostile_body_is_400_naming_the_body(
    client, victims: World, owner: asyncpg.Pool, route: Route, variant: str
) -> None:
    user = victims.a.bob
    session_id = await create_session(owner, user, title="target")
    response = await client.request(
        route.method,
        route.url(victims.a.tenant_id, session_id),
        headers={**user.headers, "Content-Type": "application/json"},
        content=VARIANTS[variant](route),
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status_code"] == 400
    assert "body" in body["detail"], body
    assert "Traceback" not in response.text
    assert not leaks(response.text, foreign_markers(victims, user))
    row = await owner.fetchrow("SELECT title, message_count FROM sessions WHERE session_id = $1", session_id)
    assert (row["title"], row["message_count"]) == ("target", 0)  # nothing was written


@pytest.mark.parametrize("route", TEXT_ROUTES, ids=str)
async def test_the_same_body_in_valid_utf8_is_accepted(
    client, victims: World, owner: asyncpg.Pool, route: Route
) -> None:
    """The control: the hostile bodies above differ from an accepted one only by their bytes."""
    user = victims.a.bob
    session_id = await create_session(owner, user, title="target")
    response = await client.request(
        route.method,
        route.url(victims.a.tenant_id, session_id),
        headers={**user.headers, "Content-Type": "application/json"},
        content=field_with(route, "café ✓ 😀".encode()),
    )
    assert response.status_code == route.ok, response.text


@pytest.mark.parametrize("route", BODY_ROUTES, ids=str)
@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b'{"title": "a\\u0000b"}', "title must not contain the NUL character (\\u0000)"),
        (b'{"a\\u0000": "x"}', "a\\u0000 must not contain the NUL character (\\u0000)"),
        (b'"\\u0000"', "the request body must not contain the NUL character (\\u0000)"),
        (b'{"title": "\\ud800"}', "the request body is not valid JSON"),
        (b"{", "the request body is not valid JSON"),
    ],
)
async def test_nul_and_malformed_json_are_400_in_words(
    client, victims: World, owner: asyncpg.Pool, route: Route, raw: bytes, detail: str
) -> None:
    """NUL can't be stored in PostgreSQL text: refused wherever it is in the body, naming where."""
    user = victims.a.bob
    session_id = await create_session(owner, user, title="target")
    response = await client.request(
        route.method,
        route.url(victims.a.tenant_id, session_id),
        headers={**user.headers, "Content-Type": "application/json"},
        content=raw,
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(detail), response.json()
