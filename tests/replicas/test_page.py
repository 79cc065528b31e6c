"""The web page keeps the latest ``X-Read-After`` and sends it back: after a write it never reads a lagging standby."""

from __future__ import annotations

from playwright.async_api import Page, Request, expect

from tests.e2e.conftest import run_server
from tests.e2e.test_sidebar import sign_in
from tests.factories import create_user
from tests.replicas.conftest import Cluster


async def test_after_a_write_the_page_reads_what_it_wrote_even_from_a_paused_standby(
    page: Page, cluster: Cluster
) -> None:
    a = cluster.world.a
    user = await create_user(cluster.owner, a.tenant_id, "supporter", cluster.world.secret)
    await cluster.caught_up()
    sent: list[tuple[str, str | None]] = []

    def record(request: Request) -> None:
        if "/api/" in request.url:
            sent.append((request.method, request.headers.get("x-read-after")))

    page.on("request", record)
    with run_server(cluster.settings()) as url:
        await sign_in(page, url, user)
        await expect(page.locator(".session")).to_have_count(0)
        await cluster.pause_replay()
        async with page.expect_response(lambda r: r.request.method == "POST") as created:
            await page.get_by_role("button", name="New session").click()
        position = (await created.value).headers["x-read-after"]
        await expect(page.locator(".session")).to_have_count(1)
        await page.reload()  # the page reads the list again: from the primary, the standby has not replayed it
        await expect(page.locator("#who")).to_contain_text(user.email)
        await expect(page.locator(".session")).to_have_count(1)
        stale = await cluster.standby_sql("SELECT count(*) FROM sessions WHERE user_id = $1", user.user_id)
    before = sent.index(("POST", None))
    assert all(header is None for _, header in sent[:before])  # nothing written yet, nothing to wait for
    assert sent[before + 1 :]
    assert all(header == position for _, header in sent[before + 1 :])
    assert stale == 0  # the standby really lagged: only the header kept the write in view
