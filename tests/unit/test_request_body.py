"""``read_body``: the whole request body is read before the request may take a pooled connection."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from app.db.transaction import BodyTooLargeError, Limits, TenantShares, TransactionMiddleware, read_body


def receiver(messages: Sequence[dict[str, object]]):
    """An ASGI ``receive`` that hands out ``messages`` in order (then a disconnect)."""
    queue = list(messages)

    async def receive() -> dict[str, object]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


def scope(content_length: int | None = None) -> dict[str, object]:
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    return {"type": "http", "headers": headers}


async def test_a_body_in_chunks_is_replayed_whole_then_receive_goes_on() -> None:
    chunks = [
        {"type": "http.request", "body": b'{"ti', "more_body": True},
        {"type": "http.request", "body": b'tle": 1}'},
    ]
    replay = await read_body(scope(12), receiver(chunks))  # type: ignore[arg-type]
    assert replay is not None
    assert await replay() == {"type": "http.request", "body": b'{"title": 1}', "more_body": False}
    assert await replay() == {"type": "http.disconnect"}  # what the server says next


async def test_a_client_that_leaves_mid_body_is_not_served() -> None:
    chunks = [{"type": "http.request", "body": b"123456789", "more_body": True}]  # then it disconnects
    assert await read_body(scope(100), receiver(chunks)) is None  # type: ignore[arg-type]


async def test_an_announced_body_over_the_limit_is_refused_before_reading() -> None:
    async def never() -> dict[str, object]:
        raise AssertionError("the body was read")

    with pytest.raises(BodyTooLargeError):
        await read_body(scope(101), never, limit=100)  # type: ignore[arg-type]


async def test_a_sent_body_over_the_limit_is_refused() -> None:
    chunks = [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 2
    with pytest.raises(BodyTooLargeError):
        await read_body(scope(), receiver(chunks), limit=100)  # type: ignore[arg-type]


async def test_the_middleware_does_not_call_the_app_for_a_client_that_left() -> None:
    called: list[object] = []
    sent: list[object] = []

    async def app(*args: object) -> None:
        called.append(args)

    async def send(message: object) -> None:
        sent.append(message)

    limits = Limits(acquire_timeout=1.0, statement_timeout_ms=1000, idle_in_transaction_timeout_ms=1000, tenant_max=1)
    middleware = TransactionMiddleware(app, limits, TenantShares(1))
    chunks = [{"type": "http.request", "body": b"123456789", "more_body": True}]
    await middleware(scope(100), receiver(chunks), send)  # type: ignore[arg-type]
    assert called == []
    assert sent == []
