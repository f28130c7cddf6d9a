"""/dashboard in a real headless Chromium against a real server and a real worker: it logs
in, draws the chart and the module graph with real data, and loads nothing from elsewhere."""

from __future__ import annotations

import time

import pytest
import requests

from app.infrastructure.migrations import upgrade
from app.testing.people import DEFAULT_PASSWORD
from tests.e2e.browser import ARTIFACTS, offline_page
from tests.servers import ServerProcess, WorkerProcess, ensure_admin, server_env


@pytest.fixture
def served(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    ensure_admin(database_url, tmp_path)
    env = server_env(database_url, "memory://", tmp_path)
    with (
        ServerProcess(env, workers=1, threads=4, log_path=tmp_path / "server.log") as server,
        WorkerProcess(env, concurrency=1, log_path=tmp_path / "worker.log"),
    ):
        yield server


def _login(base: str, username: str) -> dict[str, str]:
    response = requests.post(
        f"{base}/auth/login", json={"username": username, "password": DEFAULT_PASSWORD}, timeout=10
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _workload(base: str) -> None:
    admin = _login(base, "admin")
    users = []
    for name in ("dora", "emil"):
        body = {"username": name, "email": f"{name}@example.com", "password": DEFAULT_PASSWORD}
        users.append(requests.post(f"{base}/users", json=body, timeout=10).json()["id"])
    for amount in (500, 300):
        deposit = {"user_id": users[0], "amount": amount}
        assert requests.post(f"{base}/wallet/deposit", json=deposit, headers=admin, timeout=10).status_code == 201
    transfer = {"from_user_id": users[0], "to_user_id": users[1], "amount": 120}
    assert requests.post(f"{base}/transactions", json=transfer, headers=admin, timeout=10).status_code == 201
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the worker folds the events into the aggregates
        summary = requests.get(
            f"{base}/reports/summary",
            params={"from": "2020-01-01", "to": "2040-01-01", "interval": "month"},
            headers=admin,
            timeout=10,
        )
        if summary.status_code == 422:  # more than 366 months: ask for a year around today
            today = time.strftime("%Y-%m-%d")
            summary = requests.get(
                f"{base}/reports/summary",
                params={
                    "from": f"{int(today[:4]) - 1}-01-01",
                    "to": f"{int(today[:4]) + 1}-01-01",
                    "interval": "month",
                },
                headers=admin,
                timeout=10,
            )
        deposits = sum(bucket["deposits"]["amount"] for bucket in summary.json()["buckets"])
        if deposits == 800:
            return
        time.sleep(0.2)
    raise AssertionError("the worker did not deliver the events to reporting_module")


@pytest.mark.e2e
def test_dashboard_logs_in_and_draws_real_data(sync_playwright, served):
    _workload(served.url)
    with offline_page(sync_playwright, served.url, {"width": 1280, "height": 1400}) as seen:
        page = seen.page
        response = page.goto(served.url + "/dashboard", wait_until="load")
        assert response is not None and response.status == 200
        page.fill("#username", "admin")
        page.fill("#password", DEFAULT_PASSWORD)
        page.click("#login button[type=submit]")
        page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
        page.wait_for_selector("#volumes svg.pygal-chart", timeout=30_000)
        page.wait_for_selector("#modules svg.module-graph", timeout=30_000)
        outstanding = page.inner_text("#outstanding")
        trial = page.inner_text("#trial")
        modules = page.eval_on_selector_all(
            "#modules g.module", "nodes => nodes.map(n => [n.dataset.module, n.dataset.status])"
        )
        backlog = page.text_content("#modules g[data-module=reporting_module] .backlog") or ""
        bars = page.eval_on_selector_all("#volumes svg .series rect, #volumes svg .series path", "n => n.length")
        token = page.evaluate("sessionStorage.getItem('credit-dashboard-token')")
        dead = page.inner_text("#dead-count")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        page.reload(wait_until="load")  # the token survives a reload of the tab
        page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
        assert page.is_hidden("#login")

    assert outstanding.replace(",", "") == "800" and "balanced" in trial and "NOT" not in trial
    assert ["reporting_module", "initialized"] in modules and ["transactions_module", "initialized"] in modules
    assert backlog.startswith("backlog ") and "dead 0" in backlog
    assert bars > 0 and token and dead == "0"
    seen.assert_clean("/dashboard")
