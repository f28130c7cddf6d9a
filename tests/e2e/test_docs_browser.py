"""/docs in a real headless Chromium against a real server: the API reference renders offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from app.infrastructure.migrations import upgrade
from tests.backends import IN_CI
from tests.servers import ServerProcess, server_env

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


@pytest.fixture
def server(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    env = server_env(database_url, "memory://", tmp_path)
    with ServerProcess(env, workers=1, threads=4, log_path=tmp_path / "server.log") as server:
        yield server


@pytest.mark.e2e
def test_docs_page_renders_every_operation_offline(sync_playwright, server):
    spec = requests.get(server.url + "/openapi.json", timeout=10).json()
    operations = sorted(
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
    outside, page_errors, violations = [], [], []

    def only_this_server(route):
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:  # the page must not need the internet: refuse and remember
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.route("**/*", only_this_server)
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            # The page's Content-Security-Policy must not block anything Swagger UI needs.
            page.on(
                "console",
                lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
            )
            response = page.goto(server.url + "/docs", wait_until="load")
            assert response is not None and response.status == 200
            assert "script-src 'self' 'sha256-" in response.headers["content-security-policy"]
            page.wait_for_selector(".opblock .opblock-summary-path", timeout=30_000)
            page.wait_for_function(f"document.querySelectorAll('.opblock').length >= {len(operations)}", timeout=30_000)
            rendered = sorted(
                zip(
                    page.locator(".opblock .opblock-summary-method").all_inner_texts(),
                    page.locator(".opblock .opblock-summary-path").all_inner_texts(),
                    strict=False,
                )
            )
            rendered = [(method.strip(), path.replace("\u200b", "").strip()) for method, path in rendered]
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=True)
            title = page.locator(".info .title").inner_text()
        finally:
            browser.close()

    assert ("GET", "/transactions") in rendered and ("POST", "/transactions") in rendered
    assert ("POST", "/wallet/deposit") in rendered
    assert sorted(rendered) == operations
    assert "Credit System" in title
    assert not outside, f"/docs tried to reach beyond the server: {outside}"
    assert not page_errors, page_errors
    assert not violations, violations
