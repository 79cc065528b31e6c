"""A Server-Sent Events client for the tests: real streaming HTTP (httpx), read by a task, waited on with deadlines."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.polling import NO_HANG, until


@dataclass(frozen=True)
class Event:
    """One message of the stream: an event (``event``, ``data``, ``id``) or a comment line (``comment``)."""

    event: str | None
    data: str
    id: str | None
    comment: str | None
    at: float  # time.time() when it was read

    def json(self) -> Any:
        """``data`` decoded."""
        return json.loads(self.data)


class Parser:
    """SSE lines in, messages out (an event at its blank line, a comment line at once)."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """One line, without its end; the message it completes, if any."""
        if line.startswith(":"):
            return Event(None, "", None, line[1:].strip(), time.time())
        if line:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                self.data.append(value)
            else:
                self.fields[name] = value
            return None
        if not (self.fields or self.data):
            return None
        event = Event(self.fields.get("event"), "\n".join(self.data), self.fields.get("id"), None, time.time())
        self.fields, self.data = {}, []
        return event


def parse(raw: bytes) -> list[Event]:
    """The messages of a piece of a stream."""
    parser = Parser()
    found = (parser.feed(line) for line in raw.decode().replace("\r\n", "\n").split("\n"))
    return [event for event in found if event is not None]


@dataclass
class EventStream:
    """An open ``GET …/events`` response whose messages a task reads as they come."""

    response: httpx.Response
    received: list[Event] = field(default_factory=list)
    ended: bool = False  # the server finished the response (cleanly)
    error: BaseException | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def status_code(self) -> int:
        """The response's status."""
        return self.response.status_code

    @property
    def events(self) -> list[Event]:
        """What was received but the comment lines."""
        return [e for e in self.received if e.event is not None]

    @property
    def comments(self) -> list[Event]:
        """The comment lines (keep-alives) received."""
        return [e for e in self.received if e.comment is not None]

    @property
    def local_port(self) -> int:
        """The client side's TCP port of the stream's connection."""
        address = self.response.extensions["network_stream"].get_extra_info("client_addr")
        return int(address[1])

    def of(self, kind: str) -> list[Event]:
        """The events named ``kind``."""
        return [e for e in self.received if e.event == kind]

    def start(self) -> None:
        """Start reading the body in a task."""
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Stop reading (the connection is closed when the ``stream`` context ends)."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        parser = Parser()
        try:
            async for line in self.response.aiter_lines():
                event = parser.feed(line)
                if event is not None:
                    self.received.append(event)
            self.ended = True
        except Exception as error:  # noqa: BLE001 - kept for the test to look at
            self.error = error

    async def wait_for(self, condition: Callable[[EventStream], bool], what: str, seconds: float = NO_HANG) -> None:
        """Until ``condition(self)``; fail naming ``what`` after ``seconds`` (or when the stream broke)."""

        def holds() -> bool:
            assert self.error is None, f"the stream broke while waiting for {what}: {self.error!r}"
            return condition(self)

        await until(holds, what, seconds)

    async def wait_for_event(
        self, kind: str, what: str, match: Callable[[Any], bool] = lambda _data: True, seconds: float = NO_HANG
    ) -> Event:
        """The first ``kind`` event whose decoded data ``match``es, waiting for it."""
        await self.wait_for(lambda s: any(match(e.json()) for e in s.of(kind)), what, seconds)
        return next(e for e in self.of(kind) if match(e.json()))

    async def wait_until_ended(self, what: str = "the stream to end", seconds: float = NO_HANG) -> None:
        """Until the server ends the response."""
        await self.wait_for(lambda s: s.ended, what, seconds)


@asynccontextmanager
async def stream(
    http: httpx.AsyncClient,
    tenant_id: object,
    headers: Mapping[str, str],
    params: Mapping[str, str] | None = None,
    last_event_id: str | None = None,
) -> AsyncIterator[EventStream]:
    """``GET /api/{tenant_id}/events`` held open; a 200's body is read by a task (other statuses are read whole)."""
    sent = dict(headers)
    if last_event_id is not None:
        sent["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(10.0, read=None)  # a stream is quiet between events; the waits have deadlines
    async with http.stream("GET", f"/api/{tenant_id}/events", headers=sent, params=params, timeout=timeout) as response:
        events = EventStream(response)
        if response.status_code == 200:
            events.start()
        else:
            await response.aread()
        try:
            yield events
        finally:
            await events.stop()
