"""Pinned and archived sessions, bulk archive, the history read from its newest end, and names for admins.

In headless Chromium against the real app and PostgreSQL; the API's own answers are the reference.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_live import other_client
from tests.e2e.test_sidebar import sign_in
from tests.factories import TestUser, World, add_message, create_session, create_user


def group(page: Page, key: str) -> Any:
    """The sidebar's group ``key`` (pinned, recent, archived)."""
    return page.locator(f'.session-group[data-group="{key}"]')


def item(page: Page, session_id: object) -> Any:
    return page.locator(f'.session-item:has(.session[data-session-id="{session_id}"])')


async def menu_action(page: Page, session_id: object, action: str) -> None:
    """Open a session's ⋯ menu and pick ``action``."""
    await page.locator(f'.session-menu[data-session-id="{session_id}"] summary').click()
    await page.locator(f'.session-menu[data-session-id="{session_id}"]').get_by_role("button", name=action).click()


async def test_pin_archive_and_the_archived_view(page: Page, live_server: str, world: World) -> None:
    alice = world.a.alice
    newest, middle, oldest = world.a.sessions[alice.user_id]
    await sign_in(page, live_server, alice)
    await expect(page.locator(".session")).to_have_count(3)
    await expect(group(page, "pinned")).to_have_count(0)  # no pinned group while nothing is pinned
    await expect(page.locator(".group-heading")).to_have_count(0)

    # Pin the oldest: a "Pinned" group at the top holds it; updated_at does not move.
    before = await other_client(live_server, alice, "GET", f"/sessions/{oldest}")
    await menu_action(page, oldest, "Pin")
    await expect(group(page, "pinned").locator(".session")).to_have_attribute("data-session-id", str(oldest))
    await expect(page.locator(".group-heading")).to_have_text(["Pinned", "Recent"])
    await expect(group(page, "recent").locator(".session")).to_have_count(2)
    await expect(page.locator("#session-total")).to_have_text("(3)")
    after = await other_client(live_server, alice, "GET", f"/sessions/{oldest}")
    assert after["pinned"] is True
    assert after["updated_at"] == before["updated_at"]
    await screenshot(page, "pinned")

    # Archive the middle one: it leaves the list, and the Archived view shows it.
    await menu_action(page, middle, "Archive")
    await expect(item(page, middle)).to_have_count(0)
    await expect(page.locator("#session-total")).to_have_text("(2)")
    await page.get_by_role("button", name="Archived", exact=True).click()
    await expect(page.get_by_role("button", name="Archived", exact=True)).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#sessions-heading")).to_contain_text("Archived")
    await expect(page.locator(".session")).to_have_count(1)
    await expect(page.locator(".session")).to_have_attribute("data-session-id", str(middle))
    await expect(page.locator("#session-total")).to_have_text("(1)")
    assert await page.locator(".pick").count() == 0  # nothing to bulk-archive here
    await screenshot(page, "archived-view")
    await menu_action(page, middle, "Unarchive")
    await expect(page.locator("#empty-state")).to_have_text("No archived sessions.")
    await page.get_by_role("button", name="Sessions", exact=True).click()
    await expect(page.locator(".session")).to_have_count(3)

    # Another client unpins and archives: the page follows, live.
    await other_client(live_server, alice, "PATCH", f"/sessions/{oldest}", {"pinned": False})
    await expect(group(page, "pinned")).to_have_count(0)
    await expect(group(page, "recent").locator(".session")).to_have_count(3)
    await other_client(live_server, alice, "PATCH", f"/sessions/{newest}", {"pinned": True})
    await expect(group(page, "pinned").locator(".session")).to_have_attribute("data-session-id", str(newest))
    await other_client(live_server, alice, "PATCH", f"/sessions/{newest}", {"archived": True})
    await expect(item(page, newest)).to_have_count(0)
    await expect(page.locator("#session-total")).to_have_text("(2)")
    await page.get_by_role("button", name="Archived", exact=True).click()
    await expect(page.locator(".session")).to_have_count(1)
    await expect(page.locator(".tag")).to_have_text("pinned")  # archived and pinned both


async def test_archive_selected(page: Page, live_server: str, world: World) -> None:
    alice = world.a.alice
    newest, middle, oldest = world.a.sessions[alice.user_id]
    await sign_in(page, live_server, alice)
    await expect(page.locator(".session")).to_have_count(3)
    await expect(page.locator("#bulk-bar")).to_be_hidden()
    await item(page, newest).get_by_role("checkbox").check()
    await item(page, oldest).get_by_role("checkbox").check()
    await expect(page.locator("#bulk-count")).to_have_text("2 selected")
    await screenshot(page, "bulk-selected")
    await page.get_by_role("button", name="Archive selected").click()
    await expect(page.locator("#sidebar-status")).to_have_text("Archived 2 sessions.")
    await expect(page.locator(".session")).to_have_count(1)
    await expect(page.locator(".session")).to_have_attribute("data-session-id", str(middle))
    await expect(page.locator("#bulk-bar")).to_be_hidden()
    archived = await other_client(live_server, alice, "GET", "/sessions?archived=true")
    assert {s["session_id"] for s in archived["sessions"]} == {str(newest), str(oldest)}
    # The checkbox is labelled by the session's title; clearing the selection hides the bar.
    title = await page.locator(".session-title").first.text_content()
    await page.get_by_label(f"Select {title}").check()
    await expect(page.locator("#bulk-bar")).to_be_visible()
    await page.get_by_role("button", name="Clear").click()
    await expect(page.locator("#bulk-bar")).to_be_hidden()
    assert not await page.get_by_label(f"Select {title}").is_checked()


@pytest.fixture
async def long_chat(owner: asyncpg.Pool, world: World) -> tuple[TestUser, object]:
    """A supporter with one session of 120 messages, one a minute."""
    user = await create_user(owner, world.a.tenant_id, "supporter", world.secret)
    started = datetime.now(UTC) - timedelta(hours=5)
    session_id = await create_session(owner, user, title="A long chat", created_at=started)
    for index in range(120):
        await add_message(
            owner, user.tenant_id, session_id, f"line {index:03d}", created_at=started + timedelta(minutes=index)
        )
    return user, session_id


async def test_history_opens_on_the_newest_and_loads_older_on_scrolling_up(
    page: Page, live_server: str, long_chat: tuple[TestUser, object]
) -> None:
    user, session_id = long_chat
    await sign_in(page, live_server, user)
    await page.locator(f'.session[data-session-id="{session_id}"]').click()
    contents = page.locator(".message .content")
    await expect(contents).to_have_count(50)
    assert await contents.all_text_contents() == [f"line {i:03d}" for i in range(70, 120)]
    await expect(contents.last).to_be_in_viewport()  # opened at its end
    await expect(page.locator("#chat-meta")).to_contain_text("120 messages")
    await screenshot(page, "history-newest")

    # Scrolling up loads the page before; the message that was at the top stays where it was.
    history = page.locator("#history")
    await history.evaluate("(h) => h.scrollTo(0, 0)")
    await expect(contents).to_have_count(100)
    await expect(page.get_by_text("line 070", exact=True)).to_be_in_viewport()
    await history.evaluate("(h) => h.scrollTo(0, 0)")
    await expect(contents).to_have_count(120)
    assert await contents.all_text_contents() == [f"line {i:03d}" for i in range(120)]
    await expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()

    # A new message arrives at the end, and the history follows it when it was read to the end.
    await history.evaluate("(h) => h.scrollTo(0, h.scrollHeight)")
    await other_client(
        live_server, user, "POST", f"/sessions/{session_id}/messages", {"role": "assistant", "content": "line 120"}
    )
    await expect(contents.last).to_have_text("line 120")
    await expect(contents.last).to_be_in_viewport()


async def test_admins_see_and_pick_users_by_name(
    page: Page, live_server: str, owner: asyncpg.Pool, world: World
) -> None:
    tenant = world.a
    names = {tenant.alice.user_id: "Alice Martin", tenant.bob.user_id: "Bob Okafor"}
    for user_id, name in names.items():
        await owner.execute("UPDATE users SET display_name = $2 WHERE user_id = $1", user_id, name)
    await sign_in(page, live_server, tenant.admin)
    await expect(page.locator(".session")).to_have_count(6)
    owners = await page.locator(".session .owner").all_text_contents()
    assert set(owners) == {"Alice Martin", "Bob Okafor", "me"}
    assert not any(o.startswith("user ") for o in owners)  # no id prefixes
    picker = page.get_by_label("Show sessions of")
    await picker.select_option(label=f"Bob Okafor · {tenant.bob.email}")
    await expect(page.locator(".session")).to_have_count(2)
    await page.locator(".session").first.click()
    await expect(page.locator("#chat-meta")).to_contain_text("owner: Bob Okafor")
    await expect(page.locator("#readonly-note")).to_be_visible()
    await screenshot(page, "admin-names")
