"""The session sidebar in headless Chromium, against the real app served by uvicorn and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, PHONE, screenshot
from tests.factories import TestTenant, TestUser, World, add_message, create_session, create_user

XSS_TITLE = "<img src=x onerror=\"document.title='pwned'\"> & <b>bold</b>"


async def sign_in(page: Page, url: str, user: TestUser) -> None:
    """Paste ``user``'s token on the sign-in form and wait for the signed-in view."""
    await page.goto(url)
    await page.get_by_label("Access token (JWT)").fill(user.token)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#who")).to_contain_text(user.email)


async def scroll_sidebar_to_end(page: Page) -> None:
    """Scroll the sidebar down, as a reader does, to its end."""
    await page.locator("#sidebar").evaluate("(sidebar) => sidebar.scrollTo(0, sidebar.scrollHeight)")


async def api_sessions(url: str, user: TestUser, **params: int | str) -> dict[str, Any]:
    """The API's own answer, to compare the page with."""
    async with httpx.AsyncClient(base_url=url, headers=user.headers) as http:
        response = await http.get(f"/api/{user.tenant_id}/sessions", params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def shown(sessions: list[dict[str, Any]]) -> list[str]:
    return [s["title"] or "Untitled" for s in sessions]


@pytest.fixture
async def carol(owner: asyncpg.Pool, world: World) -> TestUser:
    """A supporter of tenant A with 13 sessions (one untitled, one with markup in its title)."""
    tenant = world.a
    user = await create_user(owner, tenant.tenant_id, "supporter", world.secret)
    now = datetime.now(UTC)
    for index in range(13):
        title = None if index == 4 else XSS_TITLE if index == 2 else f"Carol topic {index:02d}"
        started = now - timedelta(hours=3 + index * 9)
        session_id = await create_session(
            owner, user, title=title, agent_id=tenant.agents["DebtAgent"], created_at=started
        )
        for turn in range(index % 3 + 1):
            role = "user" if turn % 2 == 0 else "assistant"
            content = f"carol {index} turn {turn}"
            await add_message(
                owner, tenant.tenant_id, session_id, content, role=role, created_at=started + timedelta(minutes=turn)
            )
    return user


async def test_sign_in_list_load_more_and_read_history(page: Page, live_server: str, carol: TestUser) -> None:
    await sign_in(page, live_server, carol)
    first = await api_sessions(live_server, carol, limit=10)
    titles = page.locator(".session-title")
    await expect(titles).to_have_count(10)
    assert await titles.all_text_contents() == shown(first["sessions"])
    assert first["has_more"]
    await expect(page.locator("#session-total")).to_have_text("(13)")
    await expect(page.locator(".session").first.locator(".badge")).to_have_text("active")
    await expect(page.locator(".session").first).to_contain_text("DebtAgent")
    await expect(page.locator(".session").first).to_contain_text("hours ago")
    # Markup in a title is shown as text, never parsed.
    await expect(page.get_by_text(XSS_TITLE, exact=True)).to_be_visible()
    assert await page.locator("#session-list img, #session-list b").count() == 0
    await screenshot(page, "sidebar")
    unlabelled = await page.evaluate(
        "[...document.querySelectorAll('select, textarea, input')].filter((c) => !c.labels.length).map((c) => c.id)"
    )
    assert unlabelled == []

    # Infinite scroll: the next page (by cursor) comes when the end of the sidebar scrolls into view.
    await expect(page.get_by_role("button", name="Load more")).to_be_attached()
    await scroll_sidebar_to_end(page)
    await expect(titles).to_have_count(13)
    second = await api_sessions(live_server, carol, limit=10, cursor=first["next_cursor"])
    assert await titles.all_text_contents() == shown(first["sessions"] + second["sessions"])
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    # Click a session: its history, oldest first.
    target = first["sessions"][5]
    await page.locator(f'.session[data-session-id="{target["session_id"]}"]').click()
    await expect(page.locator("#chat-title")).to_have_text(target["title"] or "Untitled")
    index = int(target["title"].split()[-1]) if target["title"] else 4
    expected = [f"carol {index} turn {turn}" for turn in range(index % 3 + 1)]
    await expect(page.locator(".message .content")).to_have_text(expected)
    await expect(page.locator(f'.session[data-session-id="{target["session_id"]}"]')).to_have_attribute(
        "aria-current", "true"
    )
    await screenshot(page, "conversation")

    # Keyboard: arrows move between sessions, Enter opens one.
    await page.locator(".session").first.focus()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")
    await expect(page.locator("#chat-title")).to_have_text(shown(first["sessions"])[1])

    await page.set_viewport_size(PHONE)
    await page.evaluate("window.scrollTo(0, 0)")
    await screenshot(page, "phone")
    await page.locator(".session").nth(2).click()
    await expect(page.locator("#chat-title")).to_have_text(shown(first["sessions"])[2])
    await expect(page.locator("#chat-title")).to_be_in_viewport()
    await page.screenshot(path=str(ARTIFACTS / "phone-conversation.png"))
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


async def test_send_message_and_new_session(page: Page, live_server: str, carol: TestUser) -> None:
    await sign_in(page, live_server, carol)
    await expect(page.locator(".session")).to_have_count(10)
    await scroll_sidebar_to_end(page)
    await expect(page.locator(".session")).to_have_count(13)
    last = (await api_sessions(live_server, carol, limit=1, offset=12))["sessions"][0]
    await page.locator(f'.session[data-session-id="{last["session_id"]}"]').click()
    await expect(page.locator(".message")).to_have_count(last["message_count"])

    await page.get_by_label("Message", exact=True).fill("A new question from the browser")
    await page.get_by_role("button", name="Send").click()
    top = page.locator(".session").first
    await expect(top).to_have_attribute("data-session-id", last["session_id"])
    await expect(top.locator(".count")).to_have_text(f"{last['message_count'] + 1} messages")
    await expect(page.locator(".message .content").last).to_have_text("A new question from the browser")
    await expect(page.locator(".session")).to_have_count(13)  # moved, not duplicated
    assert (await api_sessions(live_server, carol, limit=1))["sessions"][0]["session_id"] == last["session_id"]
    await screenshot(page, "sent")

    await page.get_by_label("Agent for a new session").select_option(label="ShipmentAgent")
    await page.get_by_role("button", name="New session").click()
    await expect(page.locator(".session")).to_have_count(14)
    await expect(top.locator(".session-title")).to_have_text("Untitled")
    await expect(top).to_contain_text("ShipmentAgent")
    await expect(top.locator(".count")).to_have_text("0 messages")
    await expect(page.locator("#message-input")).to_be_focused()
    await page.keyboard.type("Where is container MSCU 1234567?")
    await page.keyboard.press("Control+Enter")
    await expect(top.locator(".session-title")).to_have_text("Where is container MSCU 1234567?")
    await expect(top.locator(".count")).to_have_text("1 message")
    await expect(page.locator("#session-total")).to_have_text("(14)")


async def test_empty_state(page: Page, live_server: str, owner: asyncpg.Pool, world: World) -> None:
    newcomer = await create_user(owner, world.a.tenant_id, "supporter", world.secret)
    await sign_in(page, live_server, newcomer)
    await expect(page.locator("#empty-state")).to_be_visible()
    await expect(page.locator(".session")).to_have_count(0)
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    await expect(page.locator("#session-total")).to_have_text("(0)")
    await screenshot(page, "empty")


def titles_of(tenant: TestTenant) -> set[str]:
    return {
        f"{tenant.name} {user.email} session {i}" for user in (tenant.admin, tenant.alice, tenant.bob) for i in range(3)
    }


async def test_tenant_b_never_sees_tenant_a(page: Page, live_server: str, world: World) -> None:
    a_ids = {str(s) for s in world.a.all_session_ids}
    a_users = {str(u.user_id) for u in (world.a.admin, world.a.alice, world.a.bob)}

    # The check can fail: tenant A's admin does see A's titles on this page.
    await sign_in(page, live_server, world.a.admin)
    await expect(page.locator(".session")).to_have_count(6)
    html = await page.content()
    assert all(session_id in html for session_id in a_ids)

    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, live_server, world.b.admin)
    await expect(page.locator(".session")).to_have_count(6)
    picker = page.get_by_label("Show sessions of")
    options = await picker.locator("option").evaluate_all("(options) => options.map((o) => o.value)")
    assert set(options) == {"", *(str(u.user_id) for u in (world.b.admin, world.b.alice, world.b.bob))}
    pages = [await page.content()]
    for value in options:
        await picker.select_option(value)
        await expect(page.locator(".session").first).to_be_visible()
        await page.locator(".session").first.click()
        await expect(page.locator(".message").first).to_be_visible()
        pages.append(await page.content())
    await screenshot(page, "tenant-b-admin")
    for html in pages:
        assert "B " in html
        leaked = [t for t in titles_of(world.a) if t in html] + [i for i in a_ids | a_users if i in html]
        assert not leaked, leaked
        assert "A message" not in html  # tenant A's message contents


async def test_errors_are_shown_never_a_blank_page(
    page: Page, live_server: str, owner: asyncpg.Pool, world: World
) -> None:
    # A token that is not accepted keeps the sign-in form, with a reason.
    await page.goto(live_server)
    await page.get_by_label("Access token (JWT)").fill("not-a-token")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#signin-error")).to_contain_text("does not look like a valid token")

    # 404: a session deleted after the sidebar was loaded. With live updates the page would drop it
    # by itself (tests/e2e/test_live.py), so the stream is blocked here: the page learns of it on the click.
    await page.route("**/events", lambda route: route.abort())
    alice = world.a.alice
    await sign_in(page, live_server, alice)
    await expect(page.locator(".session")).to_have_count(3)
    gone, other = world.a.sessions[alice.user_id][:2]
    await owner.execute("DELETE FROM sessions WHERE session_id = $1", gone)
    await page.locator(f'.session[data-session-id="{gone}"]').click()
    await expect(page.get_by_role("alert")).to_contain_text("Not found")
    await expect(page.locator("#chat-title")).to_have_text("Select a session")
    await expect(page.locator(".session")).to_have_count(2)
    await screenshot(page, "error-404")

    # 5xx (simulated by the browser: the server is not broken on purpose here).
    await page.route("**/messages?*", lambda route: route.fulfill(status=500, json={"status_code": 500, "detail": "x"}))
    await page.locator(f'.session[data-session-id="{other}"]').click()
    await expect(page.get_by_role("alert")).to_contain_text("The server failed (HTTP 500)")
    await expect(page.locator(".session")).to_have_count(2)
    await page.unroute("**/messages?*")

    # 401: the user is removed while signed in → back to the sign-in form with a message.
    dave = await create_user(owner, world.a.tenant_id, "supporter", world.secret)
    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, live_server, dave)
    # Let the page finish loading first: removing dave mid-load would send it back to sign-in early.
    await expect(page.locator("#empty-state")).to_be_visible()
    await expect(page.get_by_role("button", name="New session")).to_be_enabled()
    await owner.execute("DELETE FROM users WHERE user_id = $1", dave.user_id)
    await page.get_by_role("button", name="New session").click()
    await expect(page.locator("#signin-view")).to_be_visible()
    await expect(page.locator("#signin-error")).to_contain_text("sign in again")
    assert await page.evaluate("sessionStorage.length") == 0
