"""End-to-end fixtures: the real app served by uvicorn on a loopback port, and headless Chromium.

The browser is Debian's ``chromium`` (``$CHROMIUM``, default ``/usr/bin/chromium``; ``make test``
installs it as root when missing) driven by Playwright for Python; Playwright's own browser
download is not used.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect

from app.main import create_app
from app.settings import Settings

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@contextmanager
def run_server(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` with uvicorn in a thread on a free loopback port; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(scope="module")
def live_server(settings: Settings) -> Iterator[str]:
    """The app (development settings of the test run) served for real; its base URL."""
    with run_server(settings) as url:
        yield url


@pytest.fixture
def live_server_with(settings: Settings) -> Callable[..., AbstractContextManager[str]]:
    """``with live_server_with(app_env="production") as url:`` — another server with changed settings."""

    def start(**changes: Any) -> AbstractContextManager[str]:
        return run_server(replace(settings, **changes))

    return start


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole run."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser context (own storage) at laptop size; script errors and CSP violations fail the test."""
    context = await browser.new_context(viewport=LAPTOP)
    # Generous waits: on a loaded 2-core machine a step can take seconds (none is a timing assertion).
    context.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # The page must work under its own Content-Security-Policy (no inline script or style).
    tab.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield tab
    await context.close()
    assert not errors, errors


async def screenshot(page: Page, name: str) -> None:
    """Save the page as ``tests/artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
