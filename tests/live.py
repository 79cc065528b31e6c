"""Real servers for the fault, fuzz and scale-out tests: ``python -m app serve`` subprocesses on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """One API process: its URL and its ``Popen``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace")


def worker_pids(server: LiveServer) -> set[int]:
    """The processes of ``server`` that serve requests: its uvicorn workers (itself with one worker)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == server.process.pid:
                children.add(int(entry.name))
    # uvicorn's multiprocess supervisor also starts a resource tracker; workers hold the listening socket.
    return {pid for pid in children if _socket_inodes(pid) & _listening_inodes(server)} or {server.process.pid}


def _socket_inodes(pid: int) -> set[int]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    found.add(int(target[8:-1]))
    return found


def _tcp_sockets() -> list[tuple[int, int, int]]:
    """(local port, remote port, inode) of every IPv4 TCP socket (``/proc/net/tcp``)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        rows.append((int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16), int(fields[9])))
    return rows


def _listening_inodes(server: LiveServer) -> set[int]:
    port = int(server.url.rsplit(":", 1)[1])
    return {inode for local, remote, inode in _tcp_sockets() if local == port and remote == 0}


def serving_pid(server: LiveServer, client_port: int) -> int:
    """The worker process of ``server`` that holds the connection coming from ``client_port`` (Linux ``/proc``)."""
    port = int(server.url.rsplit(":", 1)[1])
    inodes = {inode for local, remote, inode in _tcp_sockets() if local == port and remote == client_port}
    owners = [pid for pid in worker_pids(server) if _socket_inodes(pid) & inodes]
    assert len(owners) == 1, f"connection from port {client_port}: held by {owners}"
    return owners[0]


def wait_ready(server: LiveServer, seconds: float = 60) -> None:
    """Poll ``/ready`` until 200; fail if the process dies or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.process.poll() is not None:
            raise AssertionError(f"server exited {server.process.returncode}:\n{server.output()}")
        if time.monotonic() > deadline:
            raise AssertionError("server did not become ready")
        time.sleep(0.2)


@contextmanager
def live_server(env: dict[str, str], *args: str) -> Iterator[LiveServer]:
    """``python -m app serve`` with ``env`` added to the environment; stopped (SIGTERM) on exit."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="chat-api-", suffix=".log")[1])
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would block the server
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=PROJECT,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.unlink(missing_ok=True)
