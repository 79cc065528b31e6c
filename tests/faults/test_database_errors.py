"""How database errors raised in a handler are answered: outages 503, bugs 500, never the driver's text."""

from __future__ import annotations

import contextlib

import asyncpg
from litestar import Controller, get

from app.tables import Session
from tests.factories import World


class ErrorProbe(Controller):
    """Test-only routes under /api/{tenant_id} (real guard and transaction)."""

    path = "/errors"

    @get("/dead-connection")
    async def dead_connection(self) -> None:
        with contextlib.suppress(asyncpg.PostgresError):  # on purpose: the next query meets a closed connection
            await Session.raw("SELECT pg_terminate_backend(pg_backend_pid())")
        await Session.raw("SELECT 1")

    @get("/driver-bug")
    async def driver_bug(self) -> None:
        await Session.raw("SELECT 1")
        raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress")

    @get("/cancelled")
    async def cancelled(self) -> None:
        await Session.raw("SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(5)")


async def test_a_query_on_a_connection_that_died_is_a_503(app_with, world: World) -> None:
    async with app_with(handlers=(ErrorProbe,), pool_max_size=1) as http:
        response = await http.get(world.a.path("errors/dead-connection"), headers=world.a.alice.headers)
        after = await http.get(world.a.path(), headers=world.a.alice.headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"status_code": 503, "detail": "database unavailable, retry shortly"}
    assert after.status_code == 200  # the pool replaced the dead connection


async def test_a_driver_error_on_a_healthy_connection_is_a_500_without_its_text(app_with, world: World) -> None:
    async with app_with(handlers=(ErrorProbe,), pool_max_size=1) as http:
        response = await http.get(world.a.path("errors/driver-bug"), headers=world.a.alice.headers)
        after = await http.get(world.a.path(), headers=world.a.alice.headers)
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "Internal Server Error"}
    assert after.status_code == 200


async def test_a_cancelled_statement_is_a_503_with_retry_after(app_with, world: World) -> None:
    # An operator's pg_cancel_backend looks like a statement timeout to the client.
    async with app_with(handlers=(ErrorProbe,), pool_max_size=1) as http:
        response = await http.get(world.a.path("errors/cancelled"), headers=world.a.alice.headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"status_code": 503, "detail": "the database did not answer in time, retry shortly"}
    assert "pg_sleep" not in response.text
