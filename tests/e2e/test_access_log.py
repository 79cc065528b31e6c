"""The access log on the page: a supporter sees who read their chats, an admin the tenant's entries.

An admin's reads of a colleague's session are recorded by the database (GET /access-log lists
them); the page shows them with names, and showing them reads no session (so records nothing).
"""

from __future__ import annotations

import asyncpg
from playwright.async_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_live import other_client
from tests.e2e.test_sidebar import sign_in
from tests.factories import World


async def entries(owner: asyncpg.Pool, tenant_id: object) -> int:
    return int(await owner.fetchval("SELECT count(*) FROM access_log WHERE tenant_id = $1", tenant_id))


async def test_who_read_my_chats_and_the_admins_access_log(
    page: Page, live_server: str, owner: asyncpg.Pool, world: World
) -> None:
    tenant = world.a
    alice, admin = tenant.alice, tenant.admin
    await owner.execute("UPDATE users SET display_name = 'Alice Martin' WHERE user_id = $1", alice.user_id)
    await owner.execute("UPDATE users SET display_name = 'Ada Admin' WHERE user_id = $1", admin.user_id)
    read = tenant.sessions[alice.user_id][1]
    await other_client(live_server, admin, "GET", f"/sessions/{read}")
    await other_client(live_server, admin, "GET", f"/sessions/{read}/messages")
    await other_client(live_server, admin, "GET", f"/sessions/{tenant.sessions[admin.user_id][0]}")  # own: no entry
    assert await entries(owner, tenant.tenant_id) == 2
    title = (await other_client(live_server, alice, "GET", f"/sessions/{read}"))["title"]

    # Alice: who read my chats.
    await sign_in(page, live_server, alice)
    await expect(page.locator(".session")).to_have_count(3)
    await page.get_by_role("button", name="Who read my chats").click()
    await expect(page.locator("#access-title")).to_have_text("Who read my chats")
    rows = page.locator("#access-rows tr")
    await expect(rows).to_have_count(2)
    await expect(rows.locator(".action")).to_have_text(["read its messages", "opened the session"])  # newest first
    await expect(rows.locator(".access-session")).to_have_text([title, title])
    await expect(rows.locator(".reader").first).to_have_text(f"an admin ({str(admin.user_id)[:8]})")
    await screenshot(page, "who-read-my-chats")
    await page.get_by_role("button", name="Back to the conversation").click()
    await expect(page.locator("#access-view")).to_be_hidden()
    await expect(page.locator("#chat")).to_be_visible()

    # Bob was not read: an empty list, and none of alice's entries.
    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, live_server, tenant.bob)
    await page.get_by_role("button", name="Who read my chats").click()
    await expect(page.locator("#access-empty")).to_have_text("No admin has read your sessions.")
    await expect(page.locator("#access-rows tr")).to_have_count(0)

    # The admin: the tenant's entries, with names; showing them records nothing more.
    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, live_server, admin)
    await expect(page.locator(".session")).to_have_count(6)
    before = await entries(owner, tenant.tenant_id)
    await page.get_by_role("button", name="Access log").click()
    await expect(page.locator("#access-title")).to_have_text("Access log")
    await expect(rows).to_have_count(2)
    await expect(rows.locator(".reader")).to_have_text(["me", "me"])
    await expect(rows.locator(".access-session").first).to_have_text(f"Alice Martin's session {str(read)[:8]}")
    await screenshot(page, "access-log-admin")
    assert await entries(owner, tenant.tenant_id) == before
    # A search hit whose snippet quotes a colleague's session is a read too: it shows up on top.
    await page.get_by_role("button", name="Back to the conversation").click()
    await page.get_by_label("Search sessions").fill(title.split()[-2])  # a word of alice's title ("session")
    await expect(page.locator(".snippet").first).to_be_visible()
    await page.get_by_role("button", name="Access log").click()
    await expect(rows.first.locator(".action")).to_have_text("saw it in search results")
    # Tenant B's admin sees none of tenant A's entries.
    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, live_server, world.b.admin)
    await page.get_by_role("button", name="Access log").click()
    await expect(page.locator("#access-empty")).to_be_visible()
    await expect(page.locator("#access-rows tr")).to_have_count(0)
