"""Live updates in headless Chromium: writes by another client (direct HTTP from the test) reach the open page.

The page reads ``GET /events`` with ``fetch`` (Authorization header, no token in the URL), so the
open chat and the sidebar change without a reload; a stream that is cut is reopened with
``Last-Event-ID`` and the page re-reads what it shows on ``resync``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import httpx
from playwright.async_api import Page, Request, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_sidebar import sign_in
from tests.factories import TestUser, World

NO_RELOAD = "window.__sameDocument = true"


async def other_client(url: str, user: TestUser, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A write (or read) by another client of ``user``: plain HTTP, not the page."""
    async with httpx.AsyncClient(base_url=url, headers=user.headers) as http:
        response = await http.request(method, f"/api/{user.tenant_id}{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None


async def test_writes_of_another_client_appear_without_a_reload(page: Page, live_server: str, world: World) -> None:
    alice = world.a.alice
    streams: list[Request] = []
    page.on("request", lambda request: streams.append(request) if "/events" in request.url else None)
    await sign_in(page, live_server, alice)
    await expect(page.locator(".session")).to_have_count(3)
    await page.evaluate(NO_RELOAD)
    # The stream is read with the token in the Authorization header, never in the URL.
    assert streams
    assert all(r.url.endswith(f"/api/{alice.tenant_id}/events") for r in streams)
    assert (await streams[0].all_headers())["authorization"] == f"Bearer {alice.token}"

    oldest = page.locator(".session").last
    oldest_id = await oldest.get_attribute("data-session-id")
    await oldest.click()
    await expect(page.locator(".message")).to_have_count(3)

    # A reply stored by another process appears in the open chat; the session moves to the top.
    await other_client(
        live_server,
        alice,
        "POST",
        f"/sessions/{oldest_id}/messages",
        {"role": "assistant", "content": "Reply from elsewhere"},
    )
    await expect(page.locator(".message .content").last).to_have_text("Reply from elsewhere")
    top = page.locator(".session").first
    await expect(top).to_have_attribute("data-session-id", oldest_id or "")
    await expect(top.locator(".count")).to_have_text("4 messages")
    await expect(page.locator("#chat-meta")).to_contain_text("4 messages")
    await screenshot(page, "live-message")

    # Keyboard focus survives a live update of the sidebar.
    second = page.locator(".session").nth(1)
    second_id = await second.get_attribute("data-session-id")
    await second.focus()
    created = await other_client(live_server, alice, "POST", "/sessions", {"title": "Made in another tab"})
    await expect(page.locator(".session")).to_have_count(4)
    await expect(top.locator(".session-title")).to_have_text("Made in another tab")
    await expect(page.locator("#session-total")).to_have_text("(4)")
    await expect(page.locator(f'.session[data-session-id="{second_id}"]')).to_be_focused()
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("ArrowUp")
    await expect(top).to_be_focused()
    await page.keyboard.press("End")
    await expect(page.locator(".session").last).to_be_focused()

    await other_client(
        live_server, alice, "PATCH", f"/sessions/{created['session_id']}", {"title": "Renamed elsewhere"}
    )
    await expect(page.locator(f'.session[data-session-id="{created["session_id"]}"] .session-title')).to_have_text(
        "Renamed elsewhere"
    )
    # The open session, deleted by another client, leaves the sidebar and the conversation pane.
    await other_client(live_server, alice, "DELETE", f"/sessions/{oldest_id}")
    await expect(page.locator(f'.session[data-session-id="{oldest_id}"]')).to_have_count(0)
    await expect(page.locator("#chat-title")).to_have_text("Select a session")
    await expect(page.locator("#chat-placeholder")).to_have_text("That session was deleted.")
    await expect(page.locator("#session-total")).to_have_text("(3)")
    await screenshot(page, "live-deleted")

    # Another user's writes never reach alice's page.
    bobs = world.a.sessions[world.a.bob.user_id][0]
    await other_client(live_server, world.a.bob, "PATCH", f"/sessions/{bobs}", {"title": "Bob's secret rename"})
    await other_client(live_server, alice, "PATCH", f"/sessions/{created['session_id']}", {"title": "After bob"})
    await expect(page.locator(".session-title").first).to_have_text("After bob")
    assert "Bob's secret rename" not in await page.content()
    assert await page.evaluate("window.__sameDocument") is True


async def test_admin_following_a_user_sees_that_users_writes(page: Page, live_server: str, world: World) -> None:
    admin, alice = world.a.admin, world.a.alice
    await sign_in(page, live_server, admin)
    await expect(page.locator(".session")).to_have_count(6)
    following = f"/events?user_id={alice.user_id}"
    async with page.expect_request(lambda request: request.url.endswith(following)):
        await page.get_by_label("Show sessions of").select_option(str(alice.user_id))
    await expect(page.locator(".session")).to_have_count(3)
    # No menu on a colleague's session: only its owner may rename or delete it.
    assert await page.locator(".session-menu").count() == 0
    session_id = world.a.sessions[alice.user_id][2]
    await other_client(
        live_server, alice, "POST", f"/sessions/{session_id}/messages", {"role": "user", "content": "New from alice"}
    )
    top = page.locator(".session").first
    await expect(top).to_have_attribute("data-session-id", str(session_id))
    await expect(top.locator(".count")).to_have_text("4 messages")


async def test_rename_and_delete_in_the_sidebar(page: Page, live_server: str, world: World) -> None:
    alice = world.a.alice
    await sign_in(page, live_server, alice)
    await expect(page.locator(".session")).to_have_count(3)
    target = page.locator(".session-item").nth(1)
    session_id = await target.locator(".session").get_attribute("data-session-id")
    menu = page.locator(f'.session-menu[data-session-id="{session_id}"] summary')
    await expect(menu).to_have_attribute(
        "aria-label", f"Actions for {await target.locator('.session-title').text_content()}"
    )

    # Escape cancels a rename; nothing is sent.
    await menu.click()
    await page.get_by_role("button", name="Rename").click()
    field = page.get_by_label("New title")
    await expect(field).to_be_focused()
    await field.fill("Not kept")
    await field.press("Escape")
    await expect(field).to_have_count(0)
    await expect(page.locator(f'.session[data-session-id="{session_id}"]')).to_be_focused()
    assert (await other_client(live_server, alice, "GET", f"/sessions/{session_id}"))["title"] != "Not kept"

    await menu.click()
    await page.get_by_role("button", name="Rename").click()
    await field.fill("Quarterly <b>invoice</b> run")
    await screenshot(page, "rename")
    await field.press("Enter")
    renamed = page.locator(f'.session[data-session-id="{session_id}"]')
    await expect(renamed.locator(".session-title")).to_have_text("Quarterly <b>invoice</b> run")
    await expect(page.locator(".session").first).to_have_attribute("data-session-id", session_id or "")  # moved up
    assert (await other_client(live_server, alice, "GET", f"/sessions/{session_id}"))["title"] == (
        "Quarterly <b>invoice</b> run"
    )
    assert await page.locator("#session-list b").count() == 0

    await renamed.click()
    await expect(page.locator("#chat-title")).to_have_text("Quarterly <b>invoice</b> run")
    await menu.click()
    await page.get_by_role("button", name="Delete").click()
    await expect(page.locator(".session-edit .question")).to_have_text(
        "Delete “Quarterly <b>invoice</b> run” and its 2 messages?"
    )
    await screenshot(page, "delete-confirm")
    await page.locator(".session-edit").get_by_role("button", name="Delete").click()
    await expect(renamed).to_have_count(0)
    await expect(page.locator("#session-total")).to_have_text("(2)")
    await expect(page.locator("#chat-title")).to_have_text("Select a session")
    async with httpx.AsyncClient(base_url=live_server, headers=alice.headers) as http:
        assert (await http.get(f"/api/{alice.tenant_id}/sessions/{session_id}")).status_code == 404


UNANNOUNCED = """
    SET LOCAL session_replication_role = replica;  -- no trigger: no notification, so no event
"""


async def write_unannounced(owner: asyncpg.Pool, session_id: UUID, title: str, content: str) -> None:
    """A write that publishes nothing (its triggers off), so only a re-read can show it."""
    async with owner.acquire() as connection, connection.transaction():
        await connection.execute(UNANNOUNCED)
        await connection.execute("UPDATE sessions SET title = $2 WHERE session_id = $1", session_id, title)
        await connection.execute(
            """INSERT INTO messages (session_id, tenant_id, user_id, role, content)
               SELECT session_id, tenant_id, user_id, 'assistant', $2 FROM sessions WHERE session_id = $1""",
            session_id,
            content,
        )
        await connection.execute(
            "UPDATE sessions SET message_count = message_count + 1 WHERE session_id = $1", session_id
        )


async def test_a_cut_stream_is_reopened_and_the_page_resyncs(
    page: Page, live_server: str, world: World, owner: asyncpg.Pool
) -> None:
    alice = world.a.alice
    streams: list[Request] = []
    page.on("request", lambda request: streams.append(request) if "/events" in request.url else None)
    await sign_in(page, live_server, alice)
    await expect(page.locator(".session")).to_have_count(3)
    session_id = world.a.sessions[alice.user_id][0]
    await page.locator(f'.session[data-session-id="{session_id}"]').click()
    await expect(page.locator(".message")).to_have_count(1)
    # One event, so that the stream has an id to send back.
    await other_client(live_server, alice, "PATCH", f"/sessions/{session_id}", {"title": "Before the cut"})
    await expect(page.locator("#chat-title")).to_have_text("Before the cut")
    await page.evaluate(NO_RELOAD)

    await write_unannounced(owner, session_id, "Written unannounced", "Missed reply")
    await page.wait_for_timeout(1000)
    await expect(page.locator("#chat-title")).to_have_text("Before the cut")
    opened = len(streams)
    # The server's listening connection is cut: its streams end, and it listens again by itself.
    cut = await owner.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE application_name = 'chat-sessions-api events' AND datname = current_database()"""
    )
    assert cut >= 1

    # Reopened with Last-Event-ID: resync first, and the page re-reads the list and the open chat.
    await expect(page.locator("#chat-title")).to_have_text("Written unannounced")
    await expect(page.locator(".message .content").last).to_have_text("Missed reply")
    await expect(page.locator(".session-title").first).to_have_text("Written unannounced")
    reopened = streams[opened:]
    assert reopened
    sent = [await request.all_headers() for request in reopened]
    assert all(headers.get("last-event-id") for headers in sent), sent
    assert await page.evaluate("window.__sameDocument") is True
    # And it is live again.
    await other_client(live_server, alice, "PATCH", f"/sessions/{session_id}", {"title": "After the cut"})
    await expect(page.locator("#chat-title")).to_have_text("After the cut")
    await screenshot(page, "live-resynced")


PARSE_ONE_CHARACTER_AT_A_TIME = r"""async () => {
  const { sseParser } = await import("/live.js");
  const got = [];
  const parser = sseParser((event) => got.push(event));
  const text = ': keep-alive\r\n\r\nid: 1\r\nevent: session\r\ndata: {"a":1}\r\n\r\n'
    + 'id: 2\nevent: message\ndata: x\ndata:y\n\n: comment\rid: 3\revent: resync\rdata: {}\r\r';
  for (const character of text) parser.push(character); // every split, a CR and its LF apart too
  return got;
}"""


async def test_the_stream_parser_reads_events_split_anywhere(page: Page, live_server: str) -> None:
    await page.goto(live_server)
    assert await page.evaluate(PARSE_ONE_CHARACTER_AT_A_TIME) == [
        {"type": "session", "data": '{"a":1}', "id": "1"},
        {"type": "message", "data": "x\ny", "id": "2"},
        {"type": "resync", "data": "{}", "id": "3"},
    ]
