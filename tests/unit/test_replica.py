"""The read replica's pure parts: WAL positions as the header carries them, the routing rule, a replica not started."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.middleware import DefineMiddleware

from app.db.replica import READS_WRITE, Replica, format_lsn, must_write, parse_lsn
from app.db.transaction import TransactionMiddleware
from app.events.hub import Hub
from app.main import create_app
from app.settings import Settings


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/16B3748", 0x16B3748), ("16/b374d848", 0x16 << 32 | 0xB374D848), ("FFFFFFFF/FFFFFFFF", 2**64 - 1)],
)
def test_a_wal_position_reads_and_writes_as_postgresql_prints_it(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert format_lsn(value) == text.upper()


@pytest.mark.parametrize("text", ["", "0", "0/", "/0", "0//0", "1/2/3", "g/0", "0x1/0", "1/123456789", " 0/1", "٠/١"])
def test_anything_else_is_not_a_wal_position(text: str) -> None:
    with pytest.raises(ValueError, match="not a WAL position"):
        parse_lsn(text)


def scope(method: str | None, marker: Any = None, handler: bool = True) -> Any:
    """An ASGI scope of ``method`` (None: a websocket) whose route handler has ``marker`` (or no handler)."""
    if method is None:
        return {"type": "websocket"}
    found: Any = {"type": "http", "method": method}
    if handler:
        found["route_handler"] = SimpleNamespace(opt={} if marker is None else {READS_WRITE: marker})
    return found


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_every_method_but_get_writes(method: str) -> None:
    assert must_write(scope(method))
    assert must_write(scope(method), "supporter")


def test_a_get_reads_unless_its_route_says_its_reads_write() -> None:
    assert not must_write(scope("GET"))
    assert not must_write(scope("GET"), "admin")
    assert must_write(scope("GET", True))
    assert must_write(scope("GET", True), "supporter")
    # A role's marker counts once the role is known, and only for that role.
    assert not must_write(scope("GET", "admin"))
    assert must_write(scope("GET", "admin"), "admin")
    assert not must_write(scope("GET", "admin"), "supporter")
    assert not must_write(scope("GET", handler=False))  # no route handler (yet): a read
    assert must_write(scope(None))


async def test_a_replica_that_was_never_started_has_no_pool_and_stops_quietly() -> None:
    replica = Replica("postgresql://nowhere.invalid/chat", 5000, {})
    assert not replica.usable
    assert replica.reason == "not checked yet"
    with pytest.raises(RuntimeError, match="pool is not running"):
        _ = replica.connections
    await replica.stop()


async def test_the_health_watcher_outlives_a_check_that_fails_unexpectedly(caplog: pytest.LogCaptureFixture) -> None:
    replica = Replica("postgresql://nowhere.invalid/chat", 5000, {}, interval=0.001)
    checks = 0
    recovered = asyncio.Event()

    async def check() -> None:  # the first check fails as no check should; the next ones are healthy
        nonlocal checks
        checks += 1
        if checks == 1:
            raise RuntimeError("a bug in one check")
        replica._set(True, "healthy", 0.0)
        recovered.set()

    replica.check = check  # type: ignore[method-assign]
    watcher = asyncio.create_task(replica._watch())
    try:
        async with asyncio.timeout(10):
            await recovered.wait()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert replica.usable
    assert any("health check failed" in record.getMessage() for record in caplog.records)


def test_the_router_copy_keeps_the_one_replica_and_the_one_tenant_share() -> None:
    # Litestar deep-copies the /api router with its middleware's arguments; a copied replica would never be
    # started, and copied shares would not be the ones the live updates' reads take.
    app = create_app(Settings(app_env="development", app_read_database_url="postgresql://replica.invalid/chat"))
    hub: Hub = app.state.events
    route: Any = next(r for r in app.routes if r.path.startswith("/api/"))
    found = route.route_handlers[0].resolve_middleware()
    [middleware] = [m for m in found if isinstance(m, DefineMiddleware) and m.middleware is TransactionMiddleware]
    assert middleware.kwargs["shares"] is hub.shares
    replica = middleware.kwargs["replica"]
    assert isinstance(replica, Replica)
    assert copy.deepcopy(replica) is replica


def test_the_replica_settings_come_from_the_environment() -> None:
    unset = Settings.from_env({})
    assert (unset.app_read_database_url, unset.replica_max_lag_ms) == (None, 5000)
    dsn = "postgresql://chat_app:secret@replica.internal:5432/chat"
    settings = Settings.from_env({"APP_READ_DATABASE_URL": f" {dsn} ", "DB_REPLICA_MAX_LAG_MS": "250"})
    assert (settings.app_read_database_url, settings.replica_max_lag_ms) == (dsn, 250)
