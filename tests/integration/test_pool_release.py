"""The pool's release hook: an open transaction is rolled back (its context with it); no RESET ALL runs."""

from __future__ import annotations

import asyncpg

from app.main import release_connection


async def test_release_rolls_back_an_open_transaction_and_skips_the_reset_query(database) -> None:
    pool = await asyncpg.create_pool(database.runtime_dsn, min_size=1, max_size=1, reset=release_connection)
    try:
        connection = await pool.acquire()
        await connection.execute("SET application_name = 'session-level'")
        await connection.execute("BEGIN")
        await connection.execute("SELECT set_config('app.tenant_id', '00000000-0000-0000-0000-000000000001', true)")
        await pool.release(connection)
        async with pool.acquire() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT current_setting('app.tenant_id', true)") in ("", None)
            # No RESET ALL: session-level state would survive, which is why the app never sets any.
            assert await again.fetchval("SHOW application_name") == "session-level"
    finally:
        await pool.close()
