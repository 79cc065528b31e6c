"""What both benchmarks share: the database, the server under test, the load client, the floor, the report.

- Database: an embedded PostgreSQL under ``.data/bench-postgres`` (kept between runs, so
  a loaded data set is reused), or the server of ``BENCH_DATABASE_URL`` (a superuser DSN).
- Server: the real app, ``python -m app serve`` (uvicorn, the runtime role ``chat_app``)
  in a subprocess on a free loopback port, stopped after each measurement.
- Load client: ``wrk`` (C, one thread; ``$WRK``, else on ``PATH``; ``make bench-tools``), a
  separate process that costs the server far less CPU than a Python client would; a Lua
  script rotates the request paths and prints the figures as JSON.
- Floor: the same transaction (BEGIN, the same ``set_config``, the same SQL, COMMIT) driven
  directly through an asyncpg pool as ``chat_app``, without HTTP, at the same concurrency.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from app.db.embedded import EmbeddedPostgres
from app.db.upgrade import upgrade
from app.settings import runtime_dsn_from

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "bench" / "results"
JWT_SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"
RUNTIME_PASSWORD = "chat_app_bench_password"
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP", "1"))
SERVER_POOL_SIZE = int(os.environ.get("DB_POOL_MAX_SIZE", "10"))


# --------------------------------------------------------------------------- database


@dataclass(frozen=True)
class Database:
    """A bench database: owner (superuser) and runtime DSNs."""

    name: str
    owner_dsn: str
    runtime_dsn: str


def _with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


@contextmanager
def database_server() -> Iterator[str]:
    """A superuser DSN of the server the benchmark uses (embedded unless ``BENCH_DATABASE_URL``)."""
    dsn = os.environ.get("BENCH_DATABASE_URL")
    if dsn:
        yield dsn
        return
    server = EmbeddedPostgres(PROJECT / ".data" / "bench-postgres")
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


async def open_database(server_dsn: str, name: str, *, fresh: bool) -> tuple[Database, bool]:
    """The database ``name`` (dropped first when ``fresh``), upgraded; and whether it was created now."""
    connection = await asyncpg.connect(server_dsn)
    try:
        if fresh:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        created = not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if created:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    owner = _with_database(server_dsn, name)
    runtime = runtime_dsn_from(owner, RUNTIME_PASSWORD)
    await upgrade(owner, runtime)  # idempotent: an older bench database gets the newer migrations
    return Database(name, owner, runtime), created


async def server_facts(owner_dsn: str) -> dict[str, Any]:
    """PostgreSQL version and the settings that matter for the figures."""
    connection = await asyncpg.connect(owner_dsn)
    try:
        facts = {"postgres": await connection.fetchval("SHOW server_version")}
        for name in ("shared_buffers", "fsync", "synchronous_commit", "max_connections"):
            facts[name] = await connection.fetchval(f"SHOW {name}")
        return facts
    finally:
        await connection.close()


# --------------------------------------------------------------------------- server under test


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier += children
    return sum(times.get(p, 0.0) for p in tree)


@dataclass(frozen=True)
class Server:
    """A running API server: its base URL and process id."""

    base: str
    pid: int


@contextmanager
def api_server(
    db: Database,
    workers: int,
    timeout: float = 60.0,
    command: Sequence[str] = ("-m", "app", "serve"),
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """``python -m app serve`` (or ``command``) on a free loopback port, ``env`` added; yields it; always stopped."""
    port = _free_port()
    env = (
        os.environ
        | {
            "DATABASE_URL": db.owner_dsn,
            "APP_DATABASE_URL": db.runtime_dsn,
            "JWT_SECRET": JWT_SECRET,
            "APP_ENV": "production",
            "DB_POOL_MAX_SIZE": str(SERVER_POOL_SIZE),
            "DB_POOL_MIN_SIZE": str(SERVER_POOL_SIZE),
        }
        | dict(env or {})
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = (RESULTS / "server.log").open("ab")
    argv = [sys.executable, *command, "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(argv, cwd=PROJECT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}; see {RESULTS / 'server.log'}")
            try:
                with urllib.request.urlopen(base + "/ready", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server not ready in time")
            time.sleep(0.2)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --------------------------------------------------------------------------- load client (wrk)


@dataclass(frozen=True)
class Request:
    """One HTTP request of a scenario (wrk rotates over a list of them)."""

    path: str
    token: str
    method: str = "GET"
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # sent besides Authorization (and Content-Type with a body)


_WRK_SCRIPT = """
local requests = {%s}
local i = 0
request = function()
  i = i %% #requests + 1
  local r = requests[i]
  local headers = {["Authorization"] = "Bearer " .. r[3]}
  if r[4] then headers["Content-Type"] = "application/json" end
  for name, value in pairs(r[5]) do headers[name] = value end
  return wrk.format(r[1], r[2], headers, r[4])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"socket_errors": %%d, "status_errors": %%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def _lua_headers(headers: Sequence[tuple[str, str]]) -> str:
    """A Lua table of header names and values ("[ " with a space: "[[" would open a Lua long string)."""
    return "{" + ",".join(f"[ {_lua_string(name)} ]={_lua_string(value)}" for name, value in headers) + "}"


def wrk(base: str, requests: Sequence[Request], concurrency: int, seconds: float) -> dict[str, Any]:
    """Run wrk (one thread, ``concurrency`` connections) for ``seconds``; its figures as a dict."""
    rows = ",".join(
        "{"
        + ",".join(_lua_string(x) if x else "nil" for x in (r.method, r.path, r.token, r.body))
        + f",{_lua_headers(r.headers)}}}"
        for r in requests
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % rows)
    try:
        command = [
            os.environ.get("WRK", "wrk"),
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            base,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    finally:
        os.unlink(script.name)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRKJSON "))
    raw = json.loads(line.removeprefix("WRKJSON "))
    return {
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "requests": raw["requests"],
        "errors": raw["socket_errors"] + raw["status_errors"],
    }


def http_run(server: Server, requests: Sequence[Request], concurrency: int) -> dict[str, Any]:
    """A warm-up, then the measured wrk run, with the server's CPU time per request.

    CPU per request (all uvicorn processes, user + system) is much less disturbed by other
    load on the machine than latency is: compare variants by it.
    """
    wrk(server.base, requests, concurrency, WARMUP_SECONDS)
    before = tree_cpu_seconds(server.pid)
    figures = wrk(server.base, requests, concurrency, SECONDS)
    used = tree_cpu_seconds(server.pid) - before
    return figures | {"cpu_ms_per_request": used * 1000 / max(1, figures["requests"])}


# --------------------------------------------------------------------------- raw HTTP/1.1 (asyncio streams)


@dataclass(frozen=True)
class Answer:
    """One HTTP response: status, headers (lower-case names), body, and the seconds it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def http_request(
    method: str,
    path: str,
    token: str,
    body: bytes | None = None,
    *,
    content_length: int | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """An HTTP/1.1 request as bytes (keep-alive); ``content_length`` may announce more than ``body`` holds."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None or content_length is not None:
        lines += [
            "Content-Type: application/json",
            f"Content-Length: {len(body or b'') if content_length is None else content_length}",
        ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class HttpConnection:
    """One keep-alive HTTP/1.1 connection over raw asyncio streams: no client library between the
    timer and the socket, and a client can send half a request and stop (as an attacker does)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base: str) -> HttpConnection:
        """Connect to ``base`` (``http://127.0.0.1:PORT``)."""
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until the kernel took it."""
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """Read one response (status line, headers, a ``Content-Length`` body)."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            raise NotImplementedError("chunked responses are not read here")
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split(" ")[1]), headers, body

    async def request(
        self, method: str, path: str, token: str, body: bytes | None = None, extra: Sequence[tuple[str, str]] = ()
    ) -> Answer:
        """Send one request (with ``extra`` headers) and read its response, timed from first byte sent to last read."""
        data = http_request(method, path, token, body, headers=extra)
        started = time.perf_counter()
        await self.send(data)
        status, headers, answer = await self.answer()
        return Answer(status, headers, answer, time.perf_counter() - started)

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        with suppress(OSError):
            await self.writer.wait_closed()


# --------------------------------------------------------------------------- floor (asyncpg, no HTTP)


async def _rollback_only(connection: asyncpg.Connection) -> None:
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


Transaction = Callable[[asyncpg.Connection, int], Awaitable[None]]


async def floor_run(runtime_dsn: str, transaction: Transaction, concurrency: int, workers: int = 1) -> dict[str, Any]:
    """``transaction`` run in a loop by ``concurrency`` tasks for SECONDS (after a warm-up).

    The pool holds ``min(concurrency, workers × server pool size)`` connections, as the
    server's would; like the app's, it skips asyncpg's reset query on release.
    """
    size = max(1, min(concurrency, SERVER_POOL_SIZE * workers))
    pool = await asyncpg.create_pool(runtime_dsn, min_size=size, max_size=size, reset=_rollback_only)
    try:

        async def loop(seconds: float, latencies: list[float], worker: int) -> None:
            deadline = time.perf_counter() + seconds
            n = worker
            while True:
                start = time.perf_counter()
                if start >= deadline:
                    return
                async with pool.acquire() as connection:
                    await transaction(connection, n)
                latencies.append(time.perf_counter() - start)
                n += concurrency

        await asyncio.gather(*(loop(WARMUP_SECONDS, [], w) for w in range(concurrency)))
        latencies: list[float] = []
        started = time.perf_counter()
        await asyncio.gather(*(loop(SECONDS, latencies, w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    latencies.sort()
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "rps": len(latencies) / elapsed,
        "requests": len(latencies),
    }


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


# --------------------------------------------------------------------------- report


@dataclass
class Row:
    """One line of the result table."""

    scenario: str
    workers: int
    concurrency: int
    http: dict[str, Any] | None
    floor: dict[str, Any] | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """HTTP req/s over floor tx/s (≥ 0.7 is the target)."""
        if not self.http or not self.floor or not self.floor["rps"]:
            return None
        return float(self.http["rps"] / self.floor["rps"])


@dataclass
class Report:
    """A benchmark's rows with the conditions they were measured under."""

    name: str
    dataset: dict[str, Any]
    conditions: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Record a row and print it at once (runs are long; show progress)."""
        self.rows.append(row)
        print(format_row(row), flush=True)

    def save(self) -> Path:
        """Write the JSON under bench/results/ and return its path."""
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"{self.name}-{stamp}.json"
        body = {
            "name": self.name,
            "dataset": self.dataset,
            "conditions": self.conditions,
            "rows": [asdict(r) | {"ratio": r.ratio} for r in self.rows],
        }
        path.write_text(json.dumps(body, indent=2, default=str))
        return path


HEADER = (
    f"{'scenario':<34} {'wk':>2} {'c':>3} | {'p50 ms':>7} {'p99 ms':>7} {'req/s':>7} {'err':>4} |"
    f" {'cpu ms':>6} | {'floor p50':>9} {'p99':>6} {'tx/s':>7} | {'ratio':>5}"
)


def format_row(row: Row) -> str:
    """One table line (figures, or the note when a side was not measured)."""
    h, f = row.http, row.floor

    def cell(d: dict[str, Any] | None, key: str, width: int, digits: int) -> str:
        return f"{d[key]:>{width}.{digits}f}" if d else f"{'-':>{width}}"

    errors = f"{h['errors']:>4}" if h else f"{'-':>4}"
    ratio = f"{row.ratio:>5.2f}" if row.ratio is not None else f"{'-':>5}"
    line = (
        f"{row.scenario:<34} {row.workers:>2} {row.concurrency:>3} | {cell(h, 'p50_ms', 7, 2)} "
        f"{cell(h, 'p99_ms', 7, 2)} {cell(h, 'rps', 7, 0)} {errors} "
        f"{cell(h, 'cpu_ms_per_request', 6, 2)} | {cell(f, 'p50_ms', 9, 2)} "
        f"{cell(f, 'p99_ms', 6, 2)} {cell(f, 'rps', 7, 0)} | {ratio}"
    )
    return line + (f"  {row.note}" if row.note else "")


def machine() -> dict[str, Any]:
    """CPUs, load average (now), Python and platform: the figures are only comparable within a run."""
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def conditions() -> dict[str, Any]:
    """The machine's conditions at the start of a run, and the wrk and floor settings."""
    return machine() | {
        "seconds_per_run": SECONDS,
        "warmup_seconds": WARMUP_SECONDS,
        "server_pool_size": SERVER_POOL_SIZE,
        "load_client": "wrk 4.1 (-t1, closed loop, one connection per concurrent client)",
        "floor_client": (
            "asyncpg pool in the bench process, pool size min(c, workers x server pool size), "
            "no reset query, measured just before each HTTP run"
        ),
    }


def print_header(report: Report) -> None:
    """The run's dataset and conditions, then the table header."""
    print(f"== {report.name}: {json.dumps(report.dataset)}")
    print(f"   conditions: {json.dumps(report.conditions)}")
    print(HEADER)
    print("-" * len(HEADER), flush=True)
