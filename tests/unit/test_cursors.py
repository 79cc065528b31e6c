"""app/cursors.py: round trips, exact timestamps, tamper evidence, parameter binding and the key's origin."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from litestar.exceptions import ValidationException

from app.cursors import bind_offset, cursor_key, make_cursor, read_cursor
from app.settings import DEVELOPMENT_JWT_SECRET, ConfigurationError, Settings

KEY = cursor_key(Settings(jwt_secret=secrets.token_urlsafe(48)))
BOUND: dict[str, object] = {
    "sort_by": "updated_at",
    "order": "desc",
    "user_id": None,
    "archived": "false",
    "pinned": None,
}
POSITION = (datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC), uuid.uuid4())


def refused(cursor: str, bound: dict[str, object] = BOUND, key: bytes = KEY) -> str:
    with pytest.raises(ValidationException) as caught:
        read_cursor(key, bound, cursor)
    assert caught.value.extra == [
        {"key": "cursor", "message": caught.value.detail[len("cursor ") :], "source": "query"}
    ]
    return caught.value.detail


def test_a_cursor_gives_back_its_position_to_the_microsecond() -> None:
    for moment in (
        POSITION[0],
        POSITION[0] + timedelta(microseconds=1),
        datetime(1970, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
        datetime(2026, 12, 2, 3, 4, 5, 999999, tzinfo=timezone(timedelta(hours=5))),
    ):
        cursor = make_cursor(KEY, BOUND, (moment, POSITION[1]))
        assert read_cursor(KEY, BOUND, cursor) == (moment, POSITION[1])


def test_the_bound_parameters_are_compared_whatever_their_order_but_not_limit_free_values() -> None:
    cursor = make_cursor(KEY, BOUND, POSITION)
    assert read_cursor(KEY, dict(reversed(BOUND.items())), cursor) == POSITION
    assert read_cursor(KEY, {**BOUND}, cursor) == POSITION


@pytest.mark.parametrize(
    "changed",
    [
        {"order": "asc"},
        {"sort_by": "created_at"},
        {"archived": "all"},
        {"pinned": True},
        {"user_id": str(uuid.uuid4())},
        {"q": "shipment"},  # a parameter the cursor was not made with
    ],
)
def test_a_cursor_reused_under_other_parameters_is_refused(changed: dict[str, object]) -> None:
    cursor = make_cursor(KEY, BOUND, POSITION)
    assert "other parameters" in refused(cursor, {**BOUND, **changed})


def test_a_cursor_altered_anywhere_or_malformed_is_refused() -> None:
    cursor = make_cursor(KEY, BOUND, POSITION)
    payload, mac = cursor.split(".")
    for index in range(len(cursor)):
        if cursor[index] == ".":
            continue
        flipped = cursor[:index] + ("A" if cursor[index] != "A" else "B") + cursor[index + 1 :]
        if flipped != cursor:
            assert "not a cursor this server made" in refused(flipped)
    # A payload the client rebuilt with another position, keeping the old MAC.
    forged = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged[1] += 1
    rebuilt = base64.urlsafe_b64encode(msgspec.json.encode(forged)).rstrip(b"=").decode()
    refused(f"{rebuilt}.{mac}")
    for garbage in ("", ".", "abc", payload, f"{payload}.", f".{mac}", "é.é", "!!!.???", f"{payload}.{mac}.x", "a"):
        refused(garbage)


def test_a_cursor_of_another_key_is_refused() -> None:
    other = cursor_key(Settings(jwt_secret=secrets.token_urlsafe(48)))
    assert "not a cursor this server made" in refused(make_cursor(other, BOUND, POSITION))


def test_a_cursor_excludes_a_non_zero_offset() -> None:
    bind_offset(None, 5)
    bind_offset("anything", 0)
    with pytest.raises(ValidationException, match="cursor cannot be combined with a non-zero offset"):
        bind_offset("anything", 5)


def test_the_key_comes_from_cursor_secret_else_jwt_secret_else_the_development_key() -> None:
    jwt_secret, cursor_secret = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    from_jwt = cursor_key(Settings(jwt_secret=jwt_secret))
    assert from_jwt != jwt_secret.encode()  # derived, not the signing key itself
    assert cursor_key(Settings(jwt_secret=jwt_secret, cursor_secret=cursor_secret)) != from_jwt
    assert cursor_key(Settings(jwt_secret=jwt_secret, cursor_secret=cursor_secret)) == cursor_key(
        Settings(cursor_secret=cursor_secret, jwt_algorithm="RS256", jwt_public_key="PEM")
    )
    assert cursor_key(Settings(app_env="development")) == cursor_key(Settings(jwt_secret=DEVELOPMENT_JWT_SECRET))
    with pytest.raises(ConfigurationError, match="CURSOR_SECRET is required"):
        cursor_key(Settings(jwt_algorithm="RS256", jwt_public_key="PEM"))


def test_production_refuses_a_missing_or_weak_cursor_secret() -> None:
    asymmetric = {"JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": "PEM", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}
    with pytest.raises(ConfigurationError, match="CURSOR_SECRET is required in production"):
        Settings.from_env(asymmetric).validate()
    for weak in ("changeme", "a" * 40, "abcdefghijklmnopqrstuvwxyz0123456789"):
        with pytest.raises(ConfigurationError, match="CURSOR_SECRET"):
            Settings.from_env({**asymmetric, "CURSOR_SECRET": weak}).validate()
        with pytest.raises(ConfigurationError, match="CURSOR_SECRET"):
            Settings.from_env({"JWT_SECRET": secrets.token_urlsafe(48), "CURSOR_SECRET": weak}).validate()
    Settings.from_env({**asymmetric, "CURSOR_SECRET": secrets.token_urlsafe(32)}).validate()
    Settings.from_env({"JWT_SECRET": secrets.token_urlsafe(48)}).validate()  # derived from JWT_SECRET
    Settings.from_env({**asymmetric, "APP_ENV": "development"}).validate()  # development: the development key
