"""Headless Chromium for the page tests (/docs, /dashboard): the fixture, and a page that may
load only the server's own resources while it collects what went wrong."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.backends import IN_CI

CHROMIUM = os.environ.get("CREDIT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _unavailable(message: str):
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def sync_playwright():
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"the playwright package is missing ({exc}): pip install -e '.[dev]'")
    return sync_playwright


@dataclass
class OfflinePage:
    page: Any  # playwright's Page
    outside: list[str] = field(default_factory=list)  # requests beyond the server, refused
    page_errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # Content-Security-Policy reports

    def assert_clean(self, what: str) -> None:
        assert not self.outside, f"{what} tried to reach beyond the server: {self.outside}"
        assert not self.page_errors, self.page_errors
        assert not self.violations, self.violations


@contextmanager
def offline_page(sync_playwright, base_url: str, viewport: dict[str, int]) -> Iterator[OfflinePage]:
    """A page of a fresh headless Chromium that may only load from base_url: anything else is
    refused and noted (the pages must work without the internet), as are the page's errors
    and what its Content-Security-Policy blocked. The browser closes on the way out."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            seen = OfflinePage(page)

            def only_this_server(route):
                if route.request.url.startswith(base_url + "/"):
                    route.continue_()
                else:
                    seen.outside.append(route.request.url)
                    route.abort()

            context.route("**/*", only_this_server)
            page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    seen.violations.append(message.text) if "Content Security Policy" in message.text else None
                ),
            )
            yield seen
        finally:
            browser.close()
