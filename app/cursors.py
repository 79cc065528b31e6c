"""Keyset cursors: an opaque, tamper-evident position in a sorted list, bound to the list's parameters.

A cursor holds the last row's position in the sort (its sort key, a timestamp, then its id)
and a tag of the parameters it was made under (``sort_by``, ``order``, the filters, ``q``,
``user_id``: whatever mapping the route passes as ``bound``; never ``limit``). It is
``base64url(payload).base64url(HMAC-SHA256(key, payload))``; the payload is
``[tag, microseconds since the epoch, id]`` in JSON, so a timestamp comes back exactly.
It reveals nothing beyond the row the client already saw.

The key is derived from ``CURSOR_SECRET`` when set, else from ``JWT_SECRET``, else (in
development only) from the development key; ``Settings.validate`` refuses a production
configuration without a strong one.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from uuid import UUID

import msgspec
from litestar.exceptions import ValidationException

from app.inputs import invalid
from app.settings import DEVELOPMENT_JWT_SECRET, ConfigurationError, Settings

Position = tuple[datetime, UUID]  # the last row's sort key and id
Row = TypeVar("Row")
CURSOR_MAX = 200  # characters: far above any cursor made here
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TAG_BYTES = 12
_KEY_CONTEXT = b"chat-sessions keyset cursor v1"


@functools.cache
def _derive(secret: str) -> bytes:
    return hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()


def cursor_key(settings: Settings) -> bytes:
    """The MAC key of cursors: from ``CURSOR_SECRET``, else ``JWT_SECRET``, else the development key."""
    secret = settings.cursor_secret or settings.jwt_secret
    if secret is None and not settings.is_production:
        secret = DEVELOPMENT_JWT_SECRET
    if secret is None:
        raise ConfigurationError("CURSOR_SECRET is required in production when there is no JWT_SECRET")
    return _derive(secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """The bytes of unpadded base64url ``text`` in its one canonical spelling (else ``ValueError``)."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError(text)
    return data


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def _tag(key: bytes, bound: Mapping[str, object]) -> str:
    """A short MAC of the bound parameters (JSON with sorted keys): equal iff the parameters are."""
    canonical = msgspec.json.encode(dict(bound), order="sorted")
    return _b64(_mac(key, b"params\x00" + canonical)[:_TAG_BYTES])


def make_cursor(key: bytes, bound: Mapping[str, object], position: Position) -> str:
    """The cursor of ``position`` in the list that ``bound`` describes."""
    moment, row_id = position
    payload = msgspec.json.encode([_tag(key, bound), (moment - _EPOCH) // _MICROSECOND, str(row_id)])
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def _malformed() -> ValidationException:
    return invalid("cursor", "is not a cursor this server made (malformed or altered)", "query")


def read_cursor(key: bytes, bound: Mapping[str, object], cursor: str) -> Position:
    """The position in ``cursor``; 400 naming ``cursor`` when it is malformed, altered or made under other ``bound``."""
    encoded, _, mac = cursor.partition(".")
    try:
        payload = _unb64(encoded)
        valid = hmac.compare_digest(_unb64(mac), _mac(key, payload))
    except (binascii.Error, ValueError):  # not base64url (ValueError: not ASCII)
        raise _malformed() from None
    if not valid:
        raise _malformed()
    tag, micros, row_id = msgspec.json.decode(payload, type=tuple[str, int, UUID])
    if not hmac.compare_digest(tag, _tag(key, bound)):
        raise invalid("cursor", "was made for other parameters (sort_by, order, filters or user_id)", "query")
    return _EPOCH + micros * _MICROSECOND, row_id


def bind_offset(cursor: str | None, offset: int) -> None:
    """400 naming ``cursor`` when a cursor comes with a non-zero ``offset`` (a cursor replaces it)."""
    if cursor is not None and offset:
        raise invalid("cursor", "cannot be combined with a non-zero offset", "query")


def cut_page(
    found: list[Row], limit: int, position: Callable[[Row], Position], cursor_of: Callable[[Position], str]
) -> tuple[list[Row], str | None]:
    """The page and its ``next_cursor`` from ``found``, the rows of a query asked for ``limit + 1``.

    The extra row only says that another page follows; the cursor is made of the page's last row.
    """
    page = found[:limit]
    return page, cursor_of(position(page[-1])) if len(found) > limit else None
