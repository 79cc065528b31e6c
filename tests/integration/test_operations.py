"""Operator contract: CLI commands, start-up refusals, health, readiness, OpenAPI, embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.auth.tokens import decode_token
from app.cli import main
from app.db.embedded import EmbeddedPostgres
from app.db.selfcheck import UnsafeRoleError
from app.main import create_app
from app.seed import demo_email, demo_id
from app.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.live import LiveServer, free_port, live_server, wait_ready

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A private directory for an embedded server (not pytest's tmp_path, which concurrent runs prune)."""
    path = Path(tempfile.mkdtemp(prefix="chat-test-embedded-"))
    yield path
    for pid_file in path.glob("*/postmaster.pid"):  # a server a failed test left running: fast shutdown
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
    shutil.rmtree(path, ignore_errors=True)


def test_db_upgrade_is_idempotent_and_seed_inserts_once(fresh_database, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", fresh_database.owner_dsn)
    monkeypatch.setenv("APP_DATABASE_URL", fresh_database.runtime_dsn)
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["db", "seed"]) == 0
    first = capsys.readouterr().out
    rows = asyncio.run(_count_rows(fresh_database.owner_dsn))
    assert main(["db", "seed"]) == 0
    second = capsys.readouterr().out
    assert rows["tenants"] == 3
    assert rows["sessions"] >= 9 * 5
    assert rows["messages"] > rows["sessions"]
    assert first == "seeded: " + ", ".join(f"{n} {table}" for table, n in rows.items()) + "\n"
    assert second == "seeded: 0 tenants, 0 users, 0 agent_configs, 0 sessions, 0 messages\n"
    assert asyncio.run(_count_rows(fresh_database.owner_dsn)) == rows


async def _count_rows(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        tables = ("tenants", "users", "agent_configs", "sessions", "messages")
        return {table: await connection.fetchval(f"SELECT count(*) FROM {table}") for table in tables}
    finally:
        await connection.close()


async def test_seeded_demo_data_matches_the_contract(database, owner) -> None:
    await asyncio.to_thread(_run_main, database, ["db", "seed"])
    tenants = {
        r["name"] for r in await owner.fetch("SELECT name FROM tenants WHERE name = ANY($1)", ["eTMS", "eFMS", "Vela"])
    }
    assert tenants == {"eTMS", "eFMS", "Vela"}
    for name in tenants:
        tenant_id = demo_id(name)
        roles = sorted(r["role"] for r in await owner.fetch("SELECT role FROM users WHERE tenant_id = $1", tenant_id))
        assert roles == ["admin", "supporter", "supporter"]
        agents = {
            r["name"] for r in await owner.fetch("SELECT name FROM agent_configs WHERE tenant_id = $1", tenant_id)
        }
        assert agents == {"SupervisorAgent", "GuidelineAgent", "DebtAgent", "ShipmentAgent"}
        per_user = await owner.fetch(
            """SELECT u.role, count(*) AS n, min(s.message_count) AS m
               FROM sessions s JOIN users u USING (user_id) WHERE s.tenant_id = $1 GROUP BY u.user_id""",
            tenant_id,
        )
        assert sorted((r["role"], r["n"]) for r in per_user) == [("admin", 5), ("supporter", 18), ("supporter", 18)]
        assert all(r["m"] >= 2 for r in per_user)


def _run_main(database, argv: list[str]) -> int:
    os.environ["DATABASE_URL"] = database.owner_dsn
    os.environ["APP_DATABASE_URL"] = database.runtime_dsn
    try:
        return main(argv)
    finally:
        del os.environ["DATABASE_URL"], os.environ["APP_DATABASE_URL"]


DEVELOPMENT = Settings(app_env="development")


def test_token_command_prints_a_token_for_a_seeded_user(database, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", database.owner_dsn)
    monkeypatch.setenv("APP_ENV", "development")  # as `make run` sets it
    monkeypatch.delenv("JWT_SECRET", raising=False)
    assert main(["db", "seed"]) == 0
    capsys.readouterr()
    assert main(["token", demo_email("eTMS", "anna"), "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    claims = decode_token(token, DEVELOPMENT)
    assert claims.user_id == demo_id("eTMS", "anna")
    assert claims.tenant_id == demo_id("eTMS")
    assert main(["token", "nobody@nowhere.example"]) == 1
    assert "no such user" in capsys.readouterr().err


def test_token_command_signs_with_the_configured_secret(database, monkeypatch, capsys, settings) -> None:
    monkeypatch.setenv("DATABASE_URL", database.owner_dsn)
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.setenv("JWT_SECRET", settings.jwt_secret)
    assert main(["db", "seed"]) == 0
    capsys.readouterr()
    assert main(["token", demo_email("eFMS", "ben")]) == 0
    assert decode_token(capsys.readouterr().out.strip(), settings).user_id == demo_id("eFMS", "ben")


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        ({}, "JWT_SECRET is required in production"),
        ({"APP_ENV": "production", "JWT_SECRET": "changeme" * 4}, "too easy to guess"),
        ({"APP_ENV": "development", "JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": "PEM"}, "cannot mint RS256"),
    ],
    ids=["unset APP_ENV, no secret", "weak secret", "RS256"],
)
def test_token_command_refuses_without_a_signing_key(database, monkeypatch, capsys, environ, reason) -> None:
    monkeypatch.setenv("DATABASE_URL", database.owner_dsn)
    for name in ("APP_ENV", "JWT_SECRET", "JWT_ALGORITHM", "JWT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["db", "seed"]) == 0
    capsys.readouterr()
    assert main(["token", demo_email("eTMS", "anna")]) == 2
    output = capsys.readouterr()
    assert output.out == ""
    assert "refusing to mint a token" in output.err
    assert reason in output.err


def test_serve_refuses_a_weak_secret_in_production(database, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", database.owner_dsn)
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", "changeme")
    assert main(["serve"]) == 2
    assert "refusing to start" in capsys.readouterr().err


async def assert_refuses_to_start(settings: Settings, dsn: str, reason: str) -> None:
    with pytest.raises(BaseExceptionGroup) as refused:
        async with AsyncTestClient(app=create_app(replace(settings, app_database_url=dsn))):
            pass
    assert refused.group_contains(UnsafeRoleError, match=reason, depth=None)


async def test_the_app_refuses_to_start_as_a_superuser(settings) -> None:
    await assert_refuses_to_start(settings, settings.database_url, "superuser")


async def test_the_app_refuses_a_bypassrls_role_and_a_table_owner(settings, owner) -> None:
    role = f"chat_unsafe_{uuid.uuid4().hex[:8]}"
    await owner.execute(f"CREATE ROLE {role} LOGIN BYPASSRLS")
    await owner.execute(f"GRANT chat_runtime TO {role}")
    dsn = settings.database_url.replace("postgres@", f"{role}@", 1)
    try:
        await assert_refuses_to_start(settings, dsn, "BYPASSRLS")
        await owner.execute(f"ALTER ROLE {role} NOBYPASSRLS")
        await owner.execute(f"CREATE TABLE {role}_notes (tenant_id uuid)")
        await owner.execute(f"ALTER TABLE {role}_notes OWNER TO {role}")
        await assert_refuses_to_start(settings, dsn, f"owns tenant tables {role}_notes")
    finally:
        await owner.execute(f"DROP TABLE IF EXISTS {role}_notes")
        await owner.execute(f"DROP ROLE {role}")


async def test_health_ready_and_openapi(client) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}
    schema = (await client.get("/schema/openapi.json")).json()
    paths = schema["paths"]
    for path in ("/api/{tenant_id}/sessions", "/api/{tenant_id}/me", "/health", "/ready"):
        assert path in paths, path
    listing = paths["/api/{tenant_id}/sessions"]["get"]
    assert {"200", "400", "401", "403"} <= set(listing["responses"])
    assert {p["name"] for p in listing["parameters"]} >= {"tenant_id", "user_id", "limit", "offset", "sort_by", "order"}
    assert "BearerToken" in schema["components"]["securitySchemes"]


def test_python_m_app_serve_starts_a_real_server(database) -> None:
    env = {"DATABASE_URL": database.owner_dsn, "APP_DATABASE_URL": database.runtime_dsn, "JWT_SECRET": TEST_JWT_SECRET}
    with live_server(env) as server:  # waits for /ready = 200
        assert httpx.get(f"{server.url}/api/{uuid.uuid4()}/sessions").status_code == 401
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert server.process.returncode is not None  # stopped by SIGTERM


def test_python_m_app_serve_exits_with_a_clear_message_for_a_superuser_role(database) -> None:
    env = {**os.environ, "DATABASE_URL": database.owner_dsn, "APP_DATABASE_URL": database.owner_dsn}
    env["JWT_SECRET"] = TEST_JWT_SECRET  # a valid configuration but for the role
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", str(free_port())],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "refusing to start" in result.stdout + result.stderr
    assert "superuser" in result.stdout + result.stderr


def test_embedded_server_left_by_a_killed_process_is_stopped_and_restarted(pg_dir: Path) -> None:
    pgdata = pg_dir / "pgdata"
    script = (
        "import sys, time; from pathlib import Path; from app.db.embedded import EmbeddedPostgres; "
        f"print(EmbeddedPostgres(Path({str(pgdata)!r})).start(), flush=True); time.sleep(600)"
    )
    orphan_owner = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    stale_dsn = orphan_owner.stdout.readline().strip() if orphan_owner.stdout else ""
    orphan_owner.kill()
    orphan_owner.wait()
    server = EmbeddedPostgres(pgdata)
    assert server.running()  # the killed process left its server behind
    dsn = server.start()
    try:
        assert dsn != stale_dsn  # stopped and started afresh on a new port, owned by this process
        assert asyncio.run(_select_one(dsn)) == 1
    finally:
        server.stop()
    assert not server.running()


async def _select_one(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT 1"))
    finally:
        await connection.close()


def test_without_database_url_the_commands_use_an_embedded_postgresql(pg_dir: Path, monkeypatch, capfd) -> None:
    import app.cli

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("APP_DATABASE_URL", raising=False)
    monkeypatch.setattr(app.cli, "EMBEDDED_DATA", pg_dir / "postgres")
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "seed"]) == 0
    assert "3 tenants, 9 users, 12 agent_configs" in capfd.readouterr().out
    assert main(["token", demo_email("Vela", "admin")]) == 0
    assert decode_token(capfd.readouterr().out.strip(), DEVELOPMENT).tenant_id == demo_id("Vela")
    query = "SELECT current_user, current_database(), (SELECT count(*) FROM sessions)"
    assert main(["db", "psql", "--", "-At", "-c", query]) == 0  # psql on the embedded server, as its owner ...
    owner_row = capfd.readouterr().out.strip()
    assert owner_row.startswith("postgres|chat|")
    assert int(owner_row.rsplit("|", 1)[1]) > 0
    assert main(["db", "psql", "--runtime", "--", "-At", "-c", query]) == 0  # ... and as the runtime role: RLS
    assert capfd.readouterr().out.strip() == "chat_app|chat|0"
    assert not EmbeddedPostgres(pg_dir / "postgres").running()  # each command stops the server it started


async def test_upgrade_prints_the_sql_a_dba_must_run_when_the_migrator_cannot_create_roles(owner, database) -> None:
    from app.db.upgrade import RoleSetupError, ensure_roles

    migrator = f"chat_migrator_{uuid.uuid4().hex[:8]}"
    await owner.execute(f"CREATE ROLE {migrator} LOGIN NOCREATEROLE")
    try:
        connection = await asyncpg.connect(database.owner_dsn.replace("postgres@", f"{migrator}@", 1))
        try:
            # A migrator outside chat_migrator is reported (the policies name that role for the owner) ...
            with pytest.raises(RoleSetupError) as outside:
                await ensure_roles(connection, "chat_app", None)
            await owner.execute(f"GRANT chat_migrator TO {migrator}")
            # ... roles that exist already are fine ...
            await ensure_roles(connection, "chat_app", None)
            # ... missing ones are reported with the exact SQL.
            with pytest.raises(RoleSetupError) as error:
                await ensure_roles(connection, "chat_app_missing", "s3cret")
        finally:
            await connection.close()
    finally:
        await owner.execute(f"DROP ROLE {migrator}")
    assert f"GRANT chat_migrator TO {migrator};" in str(outside.value)
    assert "CREATE ROLE chat_runtime NOLOGIN;" in str(error.value)
    assert "CREATE ROLE chat_migrator NOLOGIN;" in str(error.value)
    assert "CREATE ROLE chat_app_missing LOGIN NOSUPERUSER NOBYPASSRLS" in str(error.value)
    assert "GRANT chat_runtime TO chat_app_missing;" in str(error.value)


def _cli_on(pgdata: Path, *args: str) -> list[str]:
    """``python -m app ARGS`` with the embedded server's data under ``pgdata`` (no ``DATABASE_URL``)."""
    script = "import sys; from pathlib import Path; import app.cli as cli; cli.EMBEDDED_DATA = Path(sys.argv[1]); "
    return [sys.executable, "-c", script + "cli.run(sys.argv[2:])", str(pgdata), *args]


def test_sigterm_to_serve_also_stops_the_embedded_server_it_started(pg_dir: Path) -> None:
    pgdata = pg_dir / "postgres"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "APP_DATABASE_URL")}
    env["JWT_SECRET"] = TEST_JWT_SECRET
    subprocess.run(_cli_on(pgdata, "db", "upgrade"), cwd=PROJECT, env=env, capture_output=True, timeout=120, check=True)
    port = free_port()
    log = pg_dir / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            _cli_on(pgdata, "serve", "--port", str(port)), cwd=PROJECT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server)
        assert EmbeddedPostgres(pgdata).running()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert exit_code == -signal.SIGTERM, server.output()  # still ends by the signal, as a supervisor expects
    assert "Traceback" not in server.output(), server.output()
    assert not EmbeddedPostgres(pgdata).running()  # and no PostgreSQL is left behind
