"""Browser tests: Debian's Chromium, driven by Playwright, against deepsight served by uvicorn.

Chromium is the system one (`bin/install-browser` installs it); Playwright never downloads a
browser here. Without Chromium these tests fail and say how to install it: they never skip.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

from chat_sessions.tests.factories import NotebookFactory

CHROMIUM = Path(os.environ.get("DEEPSIGHT_CHROMIUM", "/usr/bin/chromium"))
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
PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
TIMEOUT_MS = 10_000


def pytest_configure(config):
    # Tests never run collectstatic, and WhiteNoise only looks at the finders (app static/
    # folders) when told to; it reads this when the ASGI app is first built, after collection.
    settings.WHITENOISE_USE_FINDERS = True


@contextmanager
def orm_allowed_in_this_thread() -> Iterator[None]:
    """Let the test's own thread use the ORM while Playwright runs.

    Playwright's sync API keeps its event loop marked as running in the thread that drives it,
    and Django refuses ORM calls from a thread with a running loop. Only this thread is exempted:
    the server's threads keep the check, so an unsafe call in the app still fails the test.
    """
    import django.utils.asyncio as django_asyncio

    original = django_asyncio.get_running_loop
    test_thread = threading.get_ident()

    def get_running_loop():
        if threading.get_ident() == test_thread:
            raise RuntimeError("Playwright's loop, not one Django code runs on")
        return original()

    django_asyncio.get_running_loop = get_running_loop
    try:
        yield
    finally:
        django_asyncio.get_running_loop = original


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module, stopped when the module ends.

    Never session scope: Playwright's sync API marks an event loop as running in this thread
    while it lives, which breaks every later test that runs asyncio code here. Module scope holds
    wherever the fixture is imported (the security suite reuses it).
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the environment, not the code, is wrong
        pytest.fail("Playwright is not installed: run `.venv/bin/pip install -r requirements-dev.txt`.")
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium was not found at {CHROMIUM}. The browser tests need Debian's chromium: "
            "run `bin/install-browser` (apt-get install chromium), or set DEEPSIGHT_CHROMIUM."
        )
    with orm_allowed_in_this_thread(), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(live_server_asgi):
    return live_server_asgi


@pytest.fixture
def context(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context):
    """A page that fails the test on an uncaught JavaScript error or a Content-Security-Policy violation."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: "Content Security Policy" in message.text and errors.append(message.text))
    yield page
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def notebook(user):
    return NotebookFactory(owner=user, name="Plant biology")


@pytest.fixture
def logged_in(page, user):
    log_in(page, user)
    return page


def log_in(page, user):
    from playwright.sync_api import expect

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your notebooks")).to_be_visible()


def open_notebook(page, notebook):
    """Go to the notebook's page and wait until the chat panel has loaded its sessions."""
    page.goto(f"/notebooks/{notebook.pk}/")
    page.locator('[data-chat][aria-busy="false"]').wait_for()
    return page


def chat_tabs(page):
    return page.get_by_role("tablist", name="Chat sessions").get_by_role("tab")


def active_tab(page):
    return page.get_by_role("tab", selected=True)


def messages(page):
    return page.locator(".chat-messages > li")


def answers(page):
    return page.locator(".chat-messages > li.chat-msg-assistant")


def send(page, text):
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def tab_named(page, title):
    return page.get_by_role("tab", name=re.compile(re.escape(title)))
