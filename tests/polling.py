"""Waiting for a condition with a deadline, instead of sleeping and hoping the order holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import asyncpg

NO_HANG = 30.0  # a wait this long is a hang


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str, seconds: float = NO_HANG) -> None:
    """Return as soon as ``condition()`` is true; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if await result if inspect.isawaitable(result) else result:
            return
        assert time.monotonic() < deadline, f"waited {seconds:.0f} s for {what}"
        await asyncio.sleep(0.02)


async def wait_for_lock_waiters(owner: asyncpg.Pool, count: int) -> None:
    """Until ``count`` backends of the API's role (``chat_app``) wait on a lock."""

    async def waiting() -> bool:
        found = await owner.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'chat_app' AND wait_event_type = 'Lock'"
        )
        return bool(found >= count)

    await until(waiting, f"{count} requests to wait on a lock")
