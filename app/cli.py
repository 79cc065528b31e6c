"""``python -m app``: db upgrade | db seed | db psql | db prune | serve | token EMAIL | rls audit.

Without ``DATABASE_URL`` the commands start (or join) an embedded PostgreSQL under
``.data/`` and use its ``chat`` database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from app.db.embedded import EmbeddedPostgres, psql_binary
from app.settings import ConfigurationError, Settings

PROJECT_DIR = Path(__file__).resolve().parents[1]
EMBEDDED_DATA = PROJECT_DIR / ".data" / "postgres"
EMBEDDED_DATABASE = "chat"


async def create_database(server_dsn: str, name: str) -> None:
    """Create database ``name`` on the server of ``server_dsn`` unless it exists."""
    connection = await asyncpg.connect(server_dsn)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@contextmanager
def database_settings() -> Iterator[Settings]:
    """The settings, with ``DATABASE_URL`` pointing at the embedded server when it was unset."""
    settings = Settings.from_env()
    if settings.database_url:
        yield settings
        return
    server = EmbeddedPostgres(EMBEDDED_DATA)
    port = server.start_port()
    try:
        asyncio.run(create_database(server.dsn(port), EMBEDDED_DATABASE))
        # In the environment too: `serve` hands it to uvicorn's worker processes.
        os.environ["DATABASE_URL"] = server.dsn(port, EMBEDDED_DATABASE)
        yield Settings.from_env()
    finally:
        os.environ.pop("DATABASE_URL", None)
        server.stop()


def cmd_upgrade(settings: Settings) -> int:
    from app.db.upgrade import MigrationError, RoleSetupError, upgrade

    assert settings.database_url
    try:
        migrations = asyncio.run(upgrade(settings.database_url, settings.runtime_database_url))
    except (RoleSetupError, MigrationError) as error:
        print(error, file=sys.stderr)
        return 1
    print(f"database upgraded ({migrations}); policies of rls_policies/ applied")
    return 0


def cmd_seed(settings: Settings) -> int:
    from app.db.engine import use_database
    from app.seed import seed

    assert settings.database_url
    use_database(settings.database_url)
    added = asyncio.run(seed())
    print("seeded: " + ", ".join(f"{n} {table}" for table, n in added.items()))
    return 0


def cmd_prune(settings: Settings, dry_run: bool) -> int:
    """Retention: print per tenant what was (or, dry, would be) deleted."""
    from app.db.prune import prune

    assert settings.database_url
    tenants = asyncio.run(prune(settings.database_url, dry_run=dry_run))
    for tenant in tenants:
        print(tenant.line(dry_run))
    print(f"{len(tenants)} tenant(s) with a retention" + (" (dry run: nothing deleted)" if dry_run else ""))
    return 0


def cmd_token(settings: Settings, email: str, ttl: int) -> int:
    from app.auth.tokens import InvalidTokenError, mint_token

    try:
        settings.validate()
    except ConfigurationError as error:
        print(f"refusing to mint a token: {error}", file=sys.stderr)
        return 2

    async def find() -> list[asyncpg.Record]:
        assert settings.database_url
        connection = await asyncpg.connect(settings.database_url)
        try:
            rows: list[asyncpg.Record] = await connection.fetch(
                "SELECT user_id, tenant_id FROM users WHERE email = $1", email
            )
            return rows
        finally:
            await connection.close()

    rows = asyncio.run(find())
    if len(rows) != 1:
        print(f"{email}: {'no such user' if not rows else 'found in several tenants'}", file=sys.stderr)
        return 1
    try:
        print(mint_token(rows[0]["user_id"], rows[0]["tenant_id"], settings, ttl_seconds=ttl))
    except InvalidTokenError as error:
        print(f"refusing to mint a token: {error}", file=sys.stderr)
        return 2
    return 0


def split_password(dsn: str) -> tuple[str, str | None]:
    """``dsn`` without its password, and the password (decoded), so that it stays off a command line."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, None
    credentials, _, address = parts.netloc.rpartition("@")
    netloc = credentials.partition(":")[0] + "@" + address
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


def cmd_psql(settings: Settings, runtime: bool, psql_args: list[str]) -> int:
    """psql on the configured database as the owner, or as the runtime role; its exit status.

    Standard input is psql's, so statements can be piped in. The password reaches psql in
    ``PGPASSWORD``, not on its command line.
    """
    psql = psql_binary()
    if psql is None:
        print(
            "db psql: psql not found: install PostgreSQL's client (e.g. apt-get install postgresql-client)",
            file=sys.stderr,
        )
        return 2
    assert settings.database_url
    dsn, password = split_password(settings.runtime_database_url if runtime else settings.database_url)
    env = {**os.environ, "PGPASSWORD": password} if password else dict(os.environ)
    if psql_args[:1] == ["--"]:
        psql_args = psql_args[1:]
    # Ctrl-C belongs to psql (it cancels the running query); this process only waits for it.
    previous = signal.signal(signal.SIGINT, lambda _signal, _frame: None)
    try:
        return subprocess.run([psql, dsn, *psql_args], env=env, check=False).returncode  # noqa: S603 (the operator's own)
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_serve(settings: Settings, host: str, port: int, workers: int) -> int:
    import uvicorn

    try:
        settings.validate()
    except ConfigurationError as error:
        print(f"refusing to start: {error}", file=sys.stderr)
        return 2
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")
    return 0


def cmd_audit(settings: Settings, as_json: bool, exclude: list[str]) -> int:
    """Audit the live database's tenant isolation: 0 clean (warnings allowed), 1 errors, 2 cannot connect."""
    from app.audit import AuditConnectionError, render_json, render_table, run_audit
    from app.db.upgrade import runtime_login

    assert settings.database_url
    runtime_role = runtime_login(settings.runtime_database_url)[0]
    try:
        report = asyncio.run(run_audit(settings.database_url, runtime_role, exclude=exclude))
    except AuditConnectionError as error:
        print(f"rls audit: {error}", file=sys.stderr)
        return 2
    print(render_json(report) if as_json else render_table(report))
    return 0 if report.clean else 1


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m app", description="Chat Sessions API")
    commands = parser.add_subparsers(dest="command", required=True)
    db = commands.add_parser("db", help="database commands").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply roles, migrations and RLS policies (idempotent)")
    db.add_parser("seed", help="insert the demo data (idempotent)")
    prune = db.add_parser("prune", help="delete what is older than each tenant's retention_days, in short batches")
    prune.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    psql = db.add_parser(
        "psql",
        help="psql on the configured database as its owner (statements on standard input work too)",
        description="psql on the configured database (DATABASE_URL, else the embedded one under .data/).",
    )
    psql.add_argument("--runtime", action="store_true", help="connect as the API's runtime role (RLS applies)")
    psql.add_argument(
        "psql_args", nargs=argparse.REMAINDER, help="after --: arguments for psql (e.g. -- -c 'SELECT 1')"
    )
    serve = commands.add_parser("serve", help="serve the API", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes, about one per core")
    token = commands.add_parser("token", help="print a signed JWT for a seeded user (development)")
    token.add_argument("email")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    rls = commands.add_parser("rls", help="row-level security").add_subparsers(dest="rls_command", required=True)
    audit = rls.add_parser(
        "audit", help="check tenant isolation in the live database (exit 0 clean, 1 errors, 2 no DB)"
    )
    audit.add_argument("--json", action="store_true", help="print JSON (one object per finding) instead of a table")
    audit.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="KEY",
        help="leave out the finding with this cache_key (as printed, e.g. migrator:postgres); repeatable",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status."""
    args = build_parser().parse_args(argv)
    with database_settings() as settings:
        if args.command == "db":
            if args.db_command == "psql":
                return cmd_psql(settings, args.runtime, args.psql_args)
            if args.db_command == "prune":
                return cmd_prune(settings, args.dry_run)
            return cmd_upgrade(settings) if args.db_command == "upgrade" else cmd_seed(settings)
        if args.command == "rls":
            return cmd_audit(settings, args.json, args.exclude)
        if args.command == "token":
            return cmd_token(settings, args.email, args.ttl)
        return cmd_serve(settings, args.host, args.port, args.workers)


class Terminated(Exception):
    """SIGTERM arrived: unwind, so that the embedded server this process started is stopped."""


def _terminate(_signal: int, _frame: object) -> None:
    raise Terminated


def run(argv: list[str] | None = None) -> None:
    """The process entry point of ``python -m app``: ``main()``, then exit with its status.

    SIGTERM unwinds the command (stopping the embedded server it started), then ends the
    process by SIGTERM as usual. uvicorn finishes its graceful shutdown first and then
    raises the signal again, which without this handler would end the process on the spot.
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        status = main(argv)
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
        status = 128 + signal.SIGTERM  # not reached: the default action ends the process
    sys.exit(status)
