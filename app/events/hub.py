"""The live updates of one server process: its listening connection, its open streams, the fan-out.

- **One listening connection** per process (``APP_LISTEN_DATABASE_URL``, default the runtime
  DSN), outside the pool: ``LISTEN chat_events``. The triggers of ``rls_policies/`` publish ids
  there when a write commits, whichever process handled it. When the connection is lost (or a
  probe sent through it does not come back) every stream ends, and it reconnects by itself.
- **A notification only routes.** It names a tenant and a session's owner; the streams that
  follow that owner in that tenant are looked up, grouped by reader (the stream's caller), and
  for each reader one short transaction reads the named rows with *that reader's* context,
  under RLS. Only what that read returns is sent; a payload is never echoed. Notifications that
  arrive together are read together: one transaction per reader per batch, not per stream.
- **Each tick** (``EVENTS_KEEPALIVE_SECONDS``) every stream gets a comment line, a probe is
  notified through the pool and must come back on the listening connection, and every stream's
  caller is looked up again in its tenant: a user who is gone (or an admin who is no longer one,
  following someone else) ends their streams.
- A stream also ends when its token expires, when its client is too slow (``PENDING_MAX``
  events waiting), on SIGTERM/SIGINT (uvicorn waits for open responses before it shuts the
  application down, so the streams must end first) and when the process stops.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from litestar.exceptions import HTTPException
from litestar.response.sse import ServerSentEventMessage

from app.db.engine import get_engine
from app.db.transaction import DATABASE_DOWN_ERRORS, DatabaseUnavailableError, Limits, RequestTransaction, TenantShares
from app.events import queries
from app.events.queries import Rows
from app.events.schemas import Notification, SessionDeleted
from app.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "chat_events"
APPLICATION_NAME = "chat-sessions-api events"
PENDING_MAX = 1000  # events waiting for a client that does not read: past it, its stream ends
BACKLOG_MAX = 100_000  # notifications waiting for their reads: past it, every stream ends
PROBE_TIMEOUT = 5.0  # seconds for a probe to come back through the listening connection
CONNECT_TIMEOUT = 5.0
RECONNECT_MAX = 5.0  # seconds between attempts to listen again, at most
RETRY_AFTER_SECONDS = "5"
_PROBE_PREFIX = "probe:"
_decode = msgspec.json.Decoder(Notification).decode
_encode = msgspec.json.encode
# What a read can raise when the database is slow, restarting or gone.
_DOWN = (DatabaseUnavailableError, *DATABASE_DOWN_ERRORS, asyncpg.InterfaceError, OSError)


def _log_failure(what: str, error: Exception) -> None:
    """A database that is slow or gone is a warning; anything else is a bug, logged with its traceback."""
    if isinstance(error, _DOWN):
        log.warning("live updates: %s (%r)", what, error)
    else:
        log.error("live updates: %s", what, exc_info=error)


class EventsUnavailableError(HTTPException):
    """No stream can be opened now (the cap is reached, or the process is not listening): 503."""

    status_code = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail, headers={"Retry-After": RETRY_AFTER_SECONDS})


class _End:
    """The item that ends a stream's response."""


_END = _End()
_KEEP_ALIVE = b": keep-alive\r\n\r\n"


def event_body(event: str, data: bytes) -> bytes:
    """An event as it goes on the wire, but its ``id:`` line (each stream numbers its own events)."""
    return b"event: " + event.encode() + b"\r\ndata: " + data + b"\r\n\r\n"  # JSON: one line, no CR/LF


class Chunk(ServerSentEventMessage):
    """Events already encoded, sent as they are (Litestar's SSE response calls ``encode()``)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(data=None)
        self.raw = raw

    def encode(self) -> bytes:
        """The bytes, as they were queued."""
        return self.raw


@dataclass(eq=False)
class Stream:
    """One open stream: whose sessions it carries, and what waits to be sent."""

    tenant_id: UUID
    reader_id: UUID  # the caller: every read for this stream runs in their context
    watched_id: UUID  # whose sessions it carries: the caller, or the user an admin follows
    queue: asyncio.Queue[bytes | _End] = field(default_factory=asyncio.Queue)
    expiry: asyncio.TimerHandle | None = None
    ended: bool = False
    sent: int = 0

    def send(self, body: bytes) -> None:
        """Queue an event (``event_body``) with the stream's next id."""
        self.sent += 1
        self.queue.put_nowait(b"id: %d\r\n" % self.sent + body)


def events_for(watched_id: UUID, notifications: Iterable[Notification], rows: Rows, encoded: Encoded) -> list[bytes]:
    """The events the notifications mean for a stream following ``watched_id``, built from ``rows`` only.

    ``rows`` are what the stream's reader may read; of them, only the followed user's rows are
    sent (the owner as the row says, not as the notification said). A session that is no longer
    readable is ``session_deleted`` only when a deletion was announced.
    """
    bodies: list[bytes] = []
    done: set[UUID] = set()
    for note in notifications:
        if note.user_id != watched_id:
            continue
        if note.message_id is not None:
            owner, _message = rows.messages.get(note.message_id, (None, None))
            if owner == watched_id:
                bodies.append(event_body("message", encoded.messages[note.message_id]))
        elif note.session_id not in done:
            session = rows.sessions.get(note.session_id)
            if session is not None and session.user_id == watched_id:
                bodies.append(event_body("session", encoded.sessions[note.session_id]))
                done.add(note.session_id)
            elif session is None and note.kind == "session_deleted":
                bodies.append(event_body("session_deleted", _encode(SessionDeleted(note.session_id))))
                done.add(note.session_id)
    return bodies


@dataclass(frozen=True)
class Encoded:
    """The JSON of each row of a batch's read, encoded once for all the streams of that reader."""

    sessions: dict[UUID, bytes]
    messages: dict[UUID, bytes]

    @classmethod
    def of(cls, rows: Rows) -> Encoded:
        """Encode ``rows``."""
        return cls(
            sessions={key: _encode(session) for key, session in rows.sessions.items()},
            messages={key: _encode(message) for key, (_owner, message) in rows.messages.items()},
        )


class Hub:
    """The live updates of this process (see the module docstring)."""

    def __init__(self, settings: Settings, limits: Limits, shares: TenantShares) -> None:
        self.settings = settings
        self.max_streams = settings.events_max_streams
        self.keepalive = settings.events_keepalive_seconds
        self.limits = limits
        self.shares = shares
        self.engine = get_engine()
        self.streams: set[Stream] = set()
        self._following: dict[tuple[UUID, UUID], set[Stream]] = {}  # (tenant, followed user) → streams
        self._pending: list[Notification] = []
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._echo = asyncio.Event()
        self._probe = _PROBE_PREFIX + secrets.token_hex(8)
        self._reads = asyncio.Semaphore(limits.tenant_max)  # the reads of the live updates take half the pool at most
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._signals: dict[int, Any] = {}

    @property
    def listening(self) -> bool:
        """True while the listening connection is up."""
        return self._listener is not None

    @property
    def listener_pid(self) -> int | None:
        """The server process (``pg_stat_activity.pid``) of the listening connection."""
        return self._listener.get_server_pid() if self._listener is not None else None

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        """Listen (waiting a little for the first connection), start the dispatcher and the ticks, hook the signals."""
        connected = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._keep_listening(connected), name="events: listen"),
            asyncio.create_task(self._dispatch_forever(), name="events: dispatch"),
            asyncio.create_task(self._tick_forever(), name="events: ticks"),
        ]
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await connected.wait()
        except TimeoutError:
            log.warning("live updates: not listening yet; new streams are refused (503) until then")
        self._hook_signals()

    def shutdown(self) -> None:
        """End every stream and refuse new ones (SIGTERM: before uvicorn waits for open responses)."""
        self._closing = True
        for stream in list(self.streams):
            self.end(stream, "the server is shutting down")

    async def stop(self) -> None:
        """Shut down, stop the tasks, close the listening connection."""
        self.shutdown()
        self._unhook_signals()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _hook_signals(self) -> None:
        """Run ``shutdown`` on SIGTERM and SIGINT before the server's own handler (uvicorn's), if there is one."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(number)
            if not callable(previous):
                continue

            def handler(sig: int, frame: FrameType | None, previous: Callable[..., Any] = previous) -> None:
                loop.call_soon_threadsafe(self.shutdown)
                previous(sig, frame)

            self._signals[number] = previous
            signal.signal(number, handler)

    def _unhook_signals(self) -> None:
        for number, previous in self._signals.items():
            signal.signal(number, previous)
        self._signals.clear()

    # ------------------------------------------------------------------ streams

    def open(self, tenant_id: UUID, reader_id: UUID, watched_id: UUID, expires_at: float, resync: bool) -> Stream:
        """Register a stream (``resync`` first, for a client that reconnects); it ends at ``expires_at`` (``exp``).

        Raises ``EventsUnavailableError`` (503) past ``EVENTS_MAX_STREAMS``, while the process is
        not listening (it would miss events) and once it is shutting down.
        """
        if self._closing:
            raise EventsUnavailableError("the server is shutting down, retry shortly")
        if not self.listening:
            raise EventsUnavailableError("live updates are not available right now, retry shortly")
        if len(self.streams) >= self.max_streams:
            log.warning("live updates: %d streams open, the most this process takes", len(self.streams))
            raise EventsUnavailableError("too many open streams, retry shortly")
        stream = Stream(tenant_id, reader_id, watched_id)
        if resync:
            stream.send(event_body("resync", b"{}"))
        loop = asyncio.get_running_loop()
        stream.expiry = loop.call_later(max(0.0, expires_at - time.time()), self.end, stream, "the token expired")
        self.streams.add(stream)
        self._following.setdefault((tenant_id, watched_id), set()).add(stream)
        return stream

    def end(self, stream: Stream, reason: str) -> None:
        """End ``stream`` (idempotent): unregister it and let its response finish after what is queued."""
        if stream.ended:
            return
        stream.ended = True
        log.debug("live updates: a stream ends: %s", reason)
        if stream.expiry is not None:
            stream.expiry.cancel()
        self.streams.discard(stream)
        key = (stream.tenant_id, stream.watched_id)
        following = self._following.get(key)
        if following is not None:
            following.discard(stream)
            if not following:
                del self._following[key]
        stream.queue.put_nowait(_END)

    async def events(self, stream: Stream) -> AsyncIterator[Chunk]:
        """The body of a stream's response: its events until it ends, what is queued at once in one chunk."""
        try:
            while True:
                queued = [await stream.queue.get()]
                while not stream.queue.empty():
                    queued.append(stream.queue.get_nowait())
                end = any(isinstance(item, _End) for item in queued)
                raw = b"".join(item for item in queued if isinstance(item, bytes))
                if raw:
                    yield Chunk(raw)
                if end:
                    return
        finally:
            self.end(stream, "the response is over")

    def _end_all(self, reason: str) -> None:
        for stream in list(self.streams):
            self.end(stream, reason)

    # ------------------------------------------------------------------ listening

    async def _keep_listening(self, connected: asyncio.Event) -> None:
        """Hold the listening connection; when it is lost, end every stream and listen again (with backoff)."""
        delay = 0.1
        while True:
            connection: asyncpg.Connection | None = None
            lost = self._lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(
                    self.settings.listen_database_url,
                    timeout=CONNECT_TIMEOUT,
                    statement_cache_size=self.settings.statement_cache_size,
                    server_settings={"application_name": APPLICATION_NAME},
                )
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._notified)
                self._listener = connection
                connected.set()
                delay = 0.1
                log.info("live updates: listening on %s", CHANNEL)
                await lost.wait()
                log.warning("live updates: the listening connection was lost; every stream ends")
            except Exception as error:  # noqa: BLE001 - whatever it was, listen again
                log.warning("live updates: cannot listen (%r), retrying in %.1f s", error, delay)
            finally:
                self._listener = None
                self._end_all("the database connection was lost")
                if connection is not None:
                    connection.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        """A notification arrived: queue it for the dispatcher if a stream of this process follows its owner."""
        if payload.startswith(_PROBE_PREFIX):
            if payload == self._probe:
                self._echo.set()
            return  # another process's probe
        try:
            note = _decode(payload)
        except msgspec.DecodeError:
            log.warning("live updates: ignored a notification on %s that is not ours", CHANNEL)
            return
        if note.kind == "message" and note.message_id is None:
            return
        if (note.tenant_id, note.user_id) not in self._following:
            return
        if len(self._pending) >= BACKLOG_MAX:  # the reads cannot keep up: drop it all, the clients resync
            log.warning("live updates: %d notifications wait to be read; every stream ends", len(self._pending))
            self._pending = []
            self._end_all("the process fell behind")
            return
        self._pending.append(note)
        self._wake.set()

    async def probe_listener(self) -> None:
        """Notify through a pooled connection, as a write does, and wait for it on the listening one: else it is lost.

        This also catches a listening connection behind a transaction-mode pooler: its LISTEN stays
        on one server connection, and what arrives there while that connection serves nobody is lost.
        """
        if self._listener is None:
            return
        self._echo.clear()
        try:
            async with self.engine.connections.acquire(timeout=PROBE_TIMEOUT) as connection:
                await connection.execute(f"NOTIFY {CHANNEL}, '{self._probe}'")
        except (*_DOWN, asyncpg.PostgresError) as error:
            log.warning("live updates: could not send the probe (%r)", error)  # the reads meet the same trouble
            return
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self._echo.wait()
        except TimeoutError:
            log.warning(
                "live updates: a notification did not come back to the listening connection within %.0f s "
                "(is APP_LISTEN_DATABASE_URL behind a pooler in transaction mode?); listening again",
                PROBE_TIMEOUT,
            )
            self._lost.set()

    # ------------------------------------------------------------------ fan-out

    async def _dispatch_forever(self) -> None:
        """Deliver what arrived, batch after batch (so each stream gets its events in commit order)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            try:
                await self.dispatch(batch)
            except Exception:
                log.exception("live updates: a batch could not be delivered")

    async def dispatch(self, batch: list[Notification]) -> None:
        """Read the rows of ``batch`` once per reader, in that reader's context, and queue the events."""
        groups: dict[tuple[UUID, UUID], tuple[set[Stream], list[Notification]]] = {}
        for note in batch:
            for stream in self._following.get((note.tenant_id, note.user_id), ()):
                streams, notes = groups.setdefault((stream.tenant_id, stream.reader_id), (set(), []))
                streams.add(stream)
                if not notes or notes[-1] is not note:
                    notes.append(note)
        await asyncio.gather(*(self._deliver(tenant, reader, *group) for (tenant, reader), group in groups.items()))

    async def _deliver(self, tenant_id: UUID, reader_id: UUID, streams: set[Stream], notes: list[Notification]) -> None:
        session_ids = {n.session_id for n in notes if n.message_id is None}
        message_ids = {n.message_id for n in notes if n.message_id is not None}
        try:
            async with self._reads:
                rows = await queries.read_rows(self._transaction(), tenant_id, reader_id, session_ids, message_ids)
        except Exception as error:  # noqa: BLE001 - whatever failed, these streams would miss events: end them
            _log_failure("a read failed; its streams end", error)
            rows = None
        if rows is None:
            for stream in streams:
                self.end(stream, "the reader is gone, or the read failed")
            return
        encoded = Encoded.of(rows)
        bodies: dict[UUID, list[bytes]] = {}  # per followed user: the same events for each of their streams
        for stream in streams:
            if stream.ended:
                continue
            if stream.watched_id not in bodies:
                bodies[stream.watched_id] = events_for(stream.watched_id, notes, rows, encoded)
            for body in bodies[stream.watched_id]:
                stream.send(body)
            if stream.queue.qsize() > PENDING_MAX:
                self.end(stream, "the client does not read")

    def _transaction(self) -> RequestTransaction:
        return RequestTransaction(self.engine, self.limits, self.shares)

    # ------------------------------------------------------------------ ticks

    async def _tick_forever(self) -> None:
        """Every ``keepalive`` seconds: a comment line on every stream, the probe, the callers checked."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + self.keepalive, loop.time())
            await asyncio.sleep(due - loop.time())
            for stream in list(self.streams):
                stream.queue.put_nowait(_KEEP_ALIVE)
            try:
                await self.probe_listener()
                await self.check_readers()
            except Exception:
                log.exception("live updates: a tick failed")

    async def check_readers(self) -> None:
        """End the streams whose caller is no longer a user of the tenant, or no longer an admin following another."""
        by_tenant: dict[UUID, list[Stream]] = {}
        for stream in self.streams:
            by_tenant.setdefault(stream.tenant_id, []).append(stream)
        await asyncio.gather(*(self._check_tenant(tenant, streams) for tenant, streams in by_tenant.items()))

    async def _check_tenant(self, tenant_id: UUID, streams: list[Stream]) -> None:
        try:
            async with self._reads:
                roles = await queries.user_roles(self._transaction(), tenant_id, {s.reader_id for s in streams})
        except Exception as error:  # noqa: BLE001 - callers that cannot be checked lose their streams
            _log_failure("could not check the callers; their streams end", error)
            roles = {}
        for stream in streams:
            role = roles.get(stream.reader_id)
            if role is None:
                self.end(stream, "the user no longer exists")
            elif stream.watched_id != stream.reader_id and role != "admin":
                self.end(stream, "the user is no longer an admin")
