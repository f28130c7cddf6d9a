"""/docs in a real headless Chromium against a real server: the API reference renders offline."""

from __future__ import annotations

import pytest
import requests

from app.infrastructure.migrations import upgrade
from tests.e2e.browser import ARTIFACTS, offline_page
from tests.servers import ServerProcess, server_env


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
    with offline_page(sync_playwright, server.url, {"width": 1280, "height": 1000}) as seen:
        page = seen.page
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

    assert ("GET", "/transactions") in rendered and ("POST", "/transactions") in rendered
    assert ("POST", "/wallet/deposit") in rendered
    assert sorted(rendered) == operations
    assert "Credit System" in title
    seen.assert_clean("/docs")
